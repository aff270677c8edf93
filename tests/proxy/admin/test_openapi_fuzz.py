"""Schemathesis against the app's own OpenAPI schema (`/schema/openapi.json`), admin API only.

The real app runs in-process (schemathesis's ASGI client, litestar lifespan included) on a
seeded database, SQLite and Postgres, with the admin key. Valid and invalid inputs are generated
for every admin operation; each response must not be a 5xx, must use a status code and content
type the schema declares, and must match the declared body schema; an error must be
OpenAI-shaped; and a rejected request (4xx) must leave the database exactly as it was.

Generated ids are mostly random, so half of the cases are pointed at seeded runs and tasks to
reach the handlers past the 404. A second run puts hostile values (`hostile.py`: NUL, extreme
date-times, forged cursors, oversized PATCH fields) into generated cases: each must be refused
with a 400 naming its parameter, or answered when it is odd but valid.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.core.parameters import ParameterLocation
from schemathesis.generation.modes import GenerationMode
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from persistence.engine import create_engine
from persistence.memory_recorder import MemoryRecorder
from persistence.models import runs_table as runs
from persistence.models import tasks_table as tasks
from proxy.app import create_app
from proxy.settings import parse_settings
from tests.proxy.admin.hostile import Poison, describe, poisons_for

ADMIN_KEY = "admin-key-for-tests"
AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}
RUN_IDS = [f"fuzz-run-{n}" for n in range(40)]
TASK_IDS = [f"{run_id}-t1" for run_id in RUN_IDS[:5]]
ERROR_TYPES = {
    "invalid_request_error", "authentication_error", "permission_error", "not_found_error",
    "conflict_error", "rate_limit_error", "server_error",
}  # fmt: skip


@pytest.fixture
def fuzz_database(database_url: str, seeder_for: Any) -> str:
    """A database (SQLite, then Postgres) with runs of every shape: conversations, errors,
    archived, deleted, unpriced, a task still pending."""
    asyncio.run(_seed(create_engine(database_url), seeder_for))
    return database_url


async def _seed(engine: AsyncEngine, seeder_for: Any) -> None:
    seed = seeder_for(engine)
    records = []
    for number, run_id in enumerate(RUN_IDS):
        turns = [f"question {turn}" for turn in range(1 + number % 3)]
        records += seed.conversation(run_id, turns, started=60.0 * number, user_id="u1")
    records.append(seed.make("fuzz-error", run=RUN_IDS[0], status="error", usage=None))
    records.append(seed.make("fuzz-unpriced", run=RUN_IDS[1], model="no-price-model"))
    records.append(seed.make("fuzz-pending", run=RUN_IDS[2], status="pending"))
    try:
        await seed.apply(*records)
        async with engine.begin() as conn:
            for status, ids in (("archived", RUN_IDS[3:5]), ("deleted", RUN_IDS[5:7])):
                await conn.execute(update(runs).where(runs.c.id.in_(ids)).values(status=status))
    finally:
        await engine.dispose()


class DatabaseState:
    """Every row of runs and tasks in a stable order: what an admin request could change
    (`instances` is left out: the app's heartbeat updates it on its own). Read again only
    after a request that may have changed them, which keeps the run fast on Postgres."""

    def __init__(self, runner: asyncio.Runner, engine: AsyncEngine) -> None:
        self.runner, self.engine = runner, engine
        self.known: list[Any] | None = None

    def rows(self) -> list[Any]:
        if self.known is None:
            self.known = self.runner.run(_rows(self.engine))
        return self.known

    def unchanged_by(self, response: Any, before: list[Any]) -> bool:
        """After `response`: for a refusal, whether the rows are still `before`."""
        if response.request.method != "GET" or response.status_code >= 400:
            self.known = None
        return not 400 <= response.status_code < 500 or self.rows() == before


@pytest.fixture
def database_state(fuzz_database: str) -> Iterator[DatabaseState]:
    with asyncio.Runner() as runner:
        engine = create_engine(fuzz_database)
        yield DatabaseState(runner, engine)
        runner.run(engine.dispose())


async def _rows(engine: AsyncEngine) -> list[Any]:
    async with engine.connect() as conn:
        return [
            (table.name, sorted(map(repr, (await conn.execute(select(table))).all())))
            for table in (runs, tasks)
        ]


@pytest.fixture
def fuzz_app(fuzz_database: str) -> Iterator[Any]:
    config = f"""
admin: {{api_key: "{ADMIN_KEY}"}}
database: {{url: "{fuzz_database}"}}
providers:
  mock: {{base_url: "http://127.0.0.1:9/v1"}}
default_provider: mock
"""
    app = create_app(
        parse_settings(config, {}), recorder=MemoryRecorder(), log_stream=io.StringIO()
    )
    yield app
    asgi.shutdown_lifespans()  # the lifespan schemathesis started: disposes the app's engine


@pytest.fixture
def admin_schema(fuzz_app: Any) -> Any:
    schema = schemathesis.openapi.from_asgi("/schema/openapi.json", fuzz_app)
    return schema.include(path_regex=r"^/admin/")


def openai_error_shape(ctx: Any, response: Any, case: Any) -> bool | None:
    """An error body is `{"error": {"message", "type", "param", "code"}}`."""
    if response.status_code < 400:
        return None
    body = response.json()
    error = body.get("error") if isinstance(body, dict) else None
    assert isinstance(error, dict), f"not an OpenAI error body: {body!r}"
    assert isinstance(error.get("message"), str) and error["message"], body
    assert error.get("type") in ERROR_TYPES, body
    assert set(error) >= {"param", "code"}, body
    return True


# What a schema cannot say: a cursor must come from a previous page, since < until, both within
# the years 1–9999 once their offset is applied, and metadata's depth, size and nested strings.
SEMANTIC_PARAMS = {"cursor", "since", "until", "metadata"}


def schema_valid_input_is_accepted(ctx: Any, response: Any, case: Any) -> bool | None:
    """Instead of schemathesis's positive_data_acceptance: schema-valid input may still be
    refused, but only for the rules the schema cannot express (400 naming cursor or since)."""
    if case.meta is None or case.meta.generation.mode != GenerationMode.POSITIVE:
        return None
    if response.status_code == 400:
        param = response.json()["error"]["param"]
        assert param in SEMANTIC_PARAMS, f"schema-valid input refused: {response.text}"
    return True


OPERATIONS = [
    ("GET", "/admin/runs"),
    ("GET", "/admin/runs/{run_id}"),
    ("GET", "/admin/runs/{run_id}/tasks"),
    ("GET", "/admin/runs/{run_id}/messages"),
    ("PATCH", "/admin/runs/{run_id}"),
    ("DELETE", "/admin/runs/{run_id}"),
    ("POST", "/admin/runs/{run_id}/restore"),
    ("GET", "/admin/runs/{run_id}/export"),
    ("GET", "/admin/tasks"),
    ("GET", "/admin/tasks/{task_id}"),
    ("GET", "/admin/usage"),
    ("GET", "/admin/pricing"),
]
KNOWN_IDS = {
    "run_id": st.one_of(st.none(), st.sampled_from(RUN_IDS)),
    "task_id": st.one_of(st.none(), st.sampled_from(TASK_IDS)),
}


def test_every_admin_operation_is_fuzzed(admin_schema: Any) -> None:
    operations = [result.ok() for result in admin_schema.get_all_operations()]
    assert sorted((op.method.upper(), op.path) for op in operations) == sorted(OPERATIONS)


def fuzz_settings(max_examples: int) -> Any:
    return settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )


def use_known_ids(case: Any, ids: dict[str, str | None]) -> None:
    """Point the case at seeded rows, unless its path is what was made invalid (a seeded id
    would make the request valid, and schemathesis would take its 200 for accepted bad input)."""
    if case.meta is not None and case.meta.is_negative_at(ParameterLocation.PATH):
        return
    for name, known in ids.items():
        if known is not None and name in (case.path_parameters or {}):
            case.path_parameters[name] = known


def admin_key_unless_only_it_was_made_invalid(case: Any) -> dict[str, str] | None:
    """The only header is Authorization. A case made invalid there, and not in its path or
    body, is sent as it is and must be refused (a 401): with the admin key it would reach the
    app valid, and its 200 be taken for accepted bad input (a query made invalid does not
    always survive serialisation). Any other case gets the admin key, to reach the handlers."""
    meta = case.meta
    if meta is None or not meta.is_negative_at(ParameterLocation.HEADER):
        return AUTH
    reaching = (ParameterLocation.PATH, ParameterLocation.BODY)
    return AUTH if any(meta.is_negative_at(location) for location in reaching) else None


@pytest.mark.parametrize("mode", list(GenerationMode))
@pytest.mark.parametrize(("method", "path"), OPERATIONS)
def test_admin_operation_conforms_to_its_schema_and_rejects_bad_input_unchanged(
    admin_schema: Any,
    database_state: DatabaseState,
    method: str,
    path: str,
    mode: GenerationMode,
) -> None:
    operation = admin_schema[path][method]

    @given(case=operation.as_strategy(generation_mode=mode), ids=st.fixed_dictionaries(KNOWN_IDS))
    @fuzz_settings(max_examples=25)
    def check(case: Any, ids: dict[str, str | None]) -> None:
        use_known_ids(case, ids)
        before = database_state.rows()
        response = case.call_and_validate(
            headers=admin_key_unless_only_it_was_made_invalid(case),
            additional_checks=[openai_error_shape, schema_valid_input_is_accepted],
            excluded_checks=[positive_data_acceptance],
        )
        assert database_state.unchanged_by(response, before), (
            f"{case.method} {case.path} changed data"
        )

    check()


HOSTILE_OPERATIONS = [(method, path) for method, path in OPERATIONS if path != "/admin/pricing"]


@pytest.mark.parametrize(("method", "path"), HOSTILE_OPERATIONS)
def test_hostile_values_are_refused_by_name_or_answered_and_change_nothing(
    admin_schema: Any, database_state: DatabaseState, method: str, path: str
) -> None:
    operation = admin_schema[path][method]

    @given(
        case=operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
        ids=st.fixed_dictionaries(KNOWN_IDS),
        poison=poisons_for(method, path),
    )
    @fuzz_settings(max_examples=30)
    def check(case: Any, ids: dict[str, str | None], poison: Poison) -> None:
        use_known_ids(case, ids)
        poison.apply(case)
        before = database_state.rows()
        response = case.call_and_validate(
            headers=AUTH,
            additional_checks=[openai_error_shape],
            # The poison decides the answer (a naive date-time is valid here, whatever RFC 3339
            # says), and the asserts below check it.
            excluded_checks=[positive_data_acceptance, negative_data_rejection],
        )
        if poison.refused_as:
            assert response.status_code == 400, f"{describe(poison)}: {response.text[:300]}"
            assert response.json()["error"]["param"] in poison.refused_as, describe(poison)
        else:
            assert response.status_code in (200, 404), f"{describe(poison)}: {response.text[:300]}"
        assert database_state.unchanged_by(response, before), f"{describe(poison)} changed data"

    check()
