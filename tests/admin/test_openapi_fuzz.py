"""Schemathesis against the app's own OpenAPI schema (`/schema/openapi.json`), admin API only.

The real app runs in-process (schemathesis's ASGI client, litestar lifespan included) on a
seeded SQLite database, with the admin key. Valid and invalid inputs are generated for every
admin operation; each response must not be a 5xx, must use a status code and content type the
schema declares, and must match the declared body schema; an error must be OpenAI-shaped; and
a rejected request (4xx) must leave the database exactly as it was.

Generated ids are mostly random, so half of the cases are pointed at seeded runs and tasks to
reach the handlers past the 404.
"""

from __future__ import annotations

import asyncio
import io
import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.generation.modes import GenerationMode
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import positive_data_acceptance
from sqlalchemy.ext.asyncio import AsyncEngine

from persistence.engine import create_engine
from proxy.app import create_app
from proxy.recording import MemoryRecorder
from proxy.settings import parse_settings

ADMIN_KEY = "admin-key-for-tests"
AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}
RUN_IDS = [f"fuzz-run-{n}" for n in range(40)]
TASK_IDS = [f"{run_id}-t1" for run_id in RUN_IDS[:5]]
ERROR_TYPES = {
    "invalid_request_error", "authentication_error", "permission_error", "not_found_error",
    "conflict_error", "rate_limit_error", "server_error",
}  # fmt: skip


@pytest.fixture
def fuzz_database(migrated_sqlite_template: Path, tmp_path: Path, seeder_for: Any) -> Path:
    """A SQLite database with runs of every shape: conversations, errors, archived, deleted,
    unpriced, a task still pending."""
    path = tmp_path / "fuzz.db"
    shutil.copyfile(migrated_sqlite_template, path)
    asyncio.run(_seed(create_engine(f"sqlite+aiosqlite:///{path}"), seeder_for))
    with closing(sqlite3.connect(path)) as conn, conn:  # closed, and committed
        conn.execute("UPDATE runs SET status = 'archived' WHERE id IN (?, ?)", RUN_IDS[3:5])
        conn.execute("UPDATE runs SET status = 'deleted' WHERE id IN (?, ?)", RUN_IDS[5:7])
    return path


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
    finally:
        await engine.dispose()


@pytest.fixture
def fuzz_app(fuzz_database: Path) -> Iterator[Any]:
    config = f"""
admin: {{api_key: "{ADMIN_KEY}"}}
database: {{url: "sqlite+aiosqlite:///{fuzz_database}"}}
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


def database_state(path: Path) -> list[Any]:
    """Every row of every table, in a stable order."""
    with closing(sqlite3.connect(path)) as conn:
        tables = [
            row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        ]
        return [
            (table, sorted(map(repr, conn.execute(f'SELECT * FROM "{table}"'))))
            for table in sorted(tables)
        ]


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


# What a schema cannot say: a cursor must come from a previous page, since < until.
SEMANTIC_PARAMS = {"cursor", "since"}


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


@pytest.mark.parametrize("mode", list(GenerationMode))
@pytest.mark.parametrize(("method", "path"), OPERATIONS)
def test_admin_operation_conforms_to_its_schema_and_rejects_bad_input_unchanged(
    admin_schema: Any, fuzz_database: Path, method: str, path: str, mode: GenerationMode
) -> None:
    operation = admin_schema[path][method]

    @given(case=operation.as_strategy(generation_mode=mode), ids=st.fixed_dictionaries(KNOWN_IDS))
    @settings(
        max_examples=25,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def check(case: Any, ids: dict[str, str | None]) -> None:
        for name, known in ids.items():
            if known is not None and name in (case.path_parameters or {}):
                case.path_parameters[name] = known
        before = database_state(fuzz_database)
        response = case.call_and_validate(
            headers=AUTH,
            additional_checks=[openai_error_shape, schema_valid_input_is_accepted],
            excluded_checks=[positive_data_acceptance],
        )
        if 400 <= response.status_code < 500:
            assert database_state(fuzz_database) == before, (
                f"{case.method} {case.path} changed data"
            )

    check()
