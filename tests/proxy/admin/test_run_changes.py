"""PATCH, DELETE (soft and purge) and restore: what changes, what answers, and that a
rejected request changes nothing. A PATCH stores only what the database can hold (no NUL, no
lone surrogate, anywhere) within the caps in `proxy.admin.params`."""

import json
from typing import Any

import httpx
import pytest

from proxy.admin.params import (
    MAX_BODY_NESTING,
    MAX_DESCRIPTION_LENGTH,
    MAX_METADATA_BYTES,
    MAX_METADATA_DEPTH,
    MAX_NAME_LENGTH,
    MAX_PATCH_BYTES,
    MAX_TAG_LENGTH,
    MAX_TAGS,
)


async def get_run(client: httpx.AsyncClient, run_id: str = "run-1") -> dict[str, Any]:
    response = await client.get(f"/admin/runs/{run_id}")
    assert response.status_code == 200, response.text
    return response.json()


async def test_patch_changes_each_field_and_returns_the_run(
    client: httpx.AsyncClient, seed
) -> None:
    await seed.apply(*seed.conversation("run-1", ["hi"]))
    before = await get_run(client)
    changes = {
        "name": "Renamed",
        "description": "A longer note",
        "is_starred": True,
        "status": "archived",
        "tags": ["eval", "nightly"],
        "metadata": {"team": "ml", "nested": {"k": [1, 2]}},
    }
    response = await client.patch("/admin/runs/run-1", json=changes)
    assert response.status_code == 200
    run = response.json()
    assert {key: run[key] for key in changes} == changes
    assert run["messages"] == before["messages"]
    assert run["updated_at"] > before["updated_at"]
    assert await get_run(client) == run


@pytest.mark.parametrize(
    "change",
    [
        {"name": "only the name"},
        {"description": None},
        {"is_starred": False},
        {"status": "active"},
        {"tags": []},
        {"metadata": {}},
    ],
)
async def test_patch_leaves_other_fields_alone(client: httpx.AsyncClient, seed, change) -> None:
    await seed.apply(seed.make("t1"))
    first = {"description": "d", "is_starred": True, "tags": ["a"], "metadata": {"m": 1}}
    before = (await client.patch("/admin/runs/run-1", json=first)).json()
    after = (await client.patch("/admin/runs/run-1", json=change)).json()
    changed = {key for key in after if after[key] != before[key]} - {"updated_at"}
    assert changed <= set(change)
    assert {key: after[key] for key in change} == change


async def test_an_empty_patch_changes_nothing(client: httpx.AsyncClient, seed) -> None:
    await seed.apply(seed.make("t1"))
    before = await get_run(client)
    response = await client.patch("/admin/runs/run-1", json={})
    assert response.status_code == 200 and response.json() == before


def nested(depth: int, leaf: Any = 1) -> dict[str, Any]:
    """`depth` objects inside each other."""
    value = leaf
    for _ in range(depth):
        value = {"k": value}
    return value


def sized(size: int) -> dict[str, str]:
    """An object of exactly `size` bytes as compact JSON."""
    return {"k": "x" * (size - len('{"k":""}'))}


def as_json(body: dict[str, Any]) -> bytes:
    return json.dumps(body).encode()


def deep_metadata(depth: int) -> bytes:
    """A body whose metadata nests `depth` objects (built as text: json.dumps would recurse)."""
    return b'{"metadata": ' + b'{"k": ' * depth + b"1" + b"}" * depth + b"}"


REJECTED_PATCHES = [
    (b"not json", "body"),
    (b"", "body"),
    (b"[1, 2]", "body"),
    (b'"name"', "body"),
    (b'{"name": "x", "total_cost": 0}', "total_cost"),
    (b'{"id": "other"}', "id"),
    (b'{"messages": []}', "messages"),
    (b'{"name": ""}', "name"),
    (b'{"name": null}', "name"),
    (b'{"name": 5}', "name"),
    (b'{"description": 5}', "description"),
    (b'{"is_starred": "yes"}', "is_starred"),
    (b'{"is_starred": null}', "is_starred"),
    (b'{"status": "deleted"}', "status"),
    (b'{"status": "all"}', "status"),
    (b'{"tags": "a"}', "tags"),
    (b'{"tags": [1]}', "tags"),
    (b'{"metadata": [1]}', "metadata"),
    (b'{"metadata": "x"}', "metadata"),
    # NUL anywhere: Postgres text and JSONB refuse it
    (b'{"name": "a\\u0000b"}', "name"),
    (b'{"description": "\\u0000"}', "description"),
    (b'{"tags": ["ok", "t\\u0000"]}', "tags"),
    (b'{"metadata": {"k\\u0000": 1}}', "metadata"),
    (b'{"metadata": {"a": {"b": ["x", "y\\u0000"]}}}', "metadata"),
    (b'{"metadata": {"a": [{"\\u0000": null}]}}', "metadata"),
    # caps
    (as_json({"name": "n" * (MAX_NAME_LENGTH + 1)}), "name"),
    (as_json({"description": "d" * (MAX_DESCRIPTION_LENGTH + 1)}), "description"),
    (as_json({"tags": ["t"] * (MAX_TAGS + 1)}), "tags"),
    (as_json({"tags": ["t" * (MAX_TAG_LENGTH + 1)]}), "tags"),
    (as_json({"metadata": nested(MAX_METADATA_DEPTH + 1)}), "metadata"),
    (as_json({"metadata": sized(MAX_METADATA_BYTES + 1)}), "metadata"),
    (deep_metadata(1000), "body"),  # refused before the decoder recurses
    (deep_metadata(MAX_BODY_NESTING), "body"),
    (deep_metadata(MAX_BODY_NESTING - 1), "metadata"),
    (b'{"metadata": {"k": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}", "body"),
    (b'{"metadata": ' + b"[" * 100_000, "body"),
]


@pytest.mark.parametrize(("content", "param"), REJECTED_PATCHES)
async def test_a_rejected_patch_names_the_problem_and_changes_nothing(
    client: httpx.AsyncClient, seed, content: bytes, param: str
) -> None:
    await seed.apply(seed.make("t1"))
    before = await get_run(client)
    headers = {"Content-Type": "application/json"}
    response = await client.patch("/admin/runs/run-1", content=content, headers=headers)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["type"], error["param"]) == ("invalid_request_error", param)
    assert await get_run(client) == before


async def test_patch_of_an_unknown_run_is_404(client: httpx.AsyncClient, seed) -> None:
    response = await client.patch("/admin/runs/nope", json={"name": "x"})
    assert response.status_code == 404


async def test_soft_delete_then_restore(client: httpx.AsyncClient, seed) -> None:
    await seed.apply(*seed.conversation("run-1", ["hi", "again"]))
    response = await client.delete("/admin/runs/run-1")
    assert response.status_code == 200
    deleted = response.json()
    assert deleted["status"] == "deleted" and deleted["task_count"] == 2
    assert (await client.get("/admin/runs")).json()["data"] == []
    assert len((await client.get("/admin/runs/run-1/tasks")).json()["data"]) == 2
    response = await client.post("/admin/runs/run-1/restore")
    assert response.status_code == 200
    assert response.json()["status"] == "active"
    assert [r["id"] for r in (await client.get("/admin/runs")).json()["data"]] == ["run-1"]


async def test_restore_brings_back_an_archived_run(client: httpx.AsyncClient, seed) -> None:
    await seed.apply(seed.make("t1"))
    await client.patch("/admin/runs/run-1", json={"status": "archived"})
    assert (await client.post("/admin/runs/run-1/restore")).json()["status"] == "active"


async def test_purge_removes_the_run_and_its_tasks(client: httpx.AsyncClient, seed) -> None:
    await seed.apply(*seed.conversation("run-1", ["a", "b"]), seed.make("keep", run="run-2"))
    response = await client.delete("/admin/runs/run-1", params={"purge": "true"})
    assert response.status_code == 204 and response.content == b""
    assert (await client.get("/admin/runs/run-1")).status_code == 404
    assert (await client.get("/admin/tasks/run-1-t1")).status_code == 404
    remaining = (await client.get("/admin/tasks")).json()["data"]
    assert [task["id"] for task in remaining] == ["keep"]
    assert (await client.delete("/admin/runs/run-1?purge=true")).status_code == 404


async def test_purge_false_is_a_soft_delete(client: httpx.AsyncClient, seed) -> None:
    await seed.apply(seed.make("t1"))
    response = await client.delete("/admin/runs/run-1", params={"purge": "false"})
    assert response.status_code == 200 and response.json()["status"] == "deleted"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("DELETE", "/admin/runs/nope"),
        ("DELETE", "/admin/runs/nope?purge=true"),
        ("POST", "/admin/runs/nope/restore"),
    ],
)
async def test_changes_to_unknown_runs_are_404(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    response = await client.request(method, path)
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "not_found_error"


async def test_a_bad_purge_value_is_400_and_deletes_nothing(
    client: httpx.AsyncClient, seed
) -> None:
    await seed.apply(seed.make("t1"))
    response = await client.delete("/admin/runs/run-1", params={"purge": "maybe"})
    assert response.status_code == 400 and response.json()["error"]["param"] == "purge"
    assert (await get_run(client))["status"] == "active"


async def test_patch_accepts_fields_at_their_caps(client: httpx.AsyncClient, seed) -> None:
    await seed.apply(seed.make("t1"))
    changes = {
        "name": "n" * MAX_NAME_LENGTH,
        "description": "d" * MAX_DESCRIPTION_LENGTH,
        "tags": ["t" * MAX_TAG_LENGTH] * MAX_TAGS,
        "metadata": nested(MAX_METADATA_DEPTH, "leaf"),
    }
    response = await client.patch("/admin/runs/run-1", json=changes)
    assert response.status_code == 200, response.text
    assert {key: response.json()[key] for key in changes} == changes
    response = await client.patch("/admin/runs/run-1", json={"metadata": sized(MAX_METADATA_BYTES)})
    assert response.status_code == 200, response.text
    assert (await get_run(client))["metadata"] == sized(MAX_METADATA_BYTES)


async def test_patch_stores_odd_but_storable_text_as_sent(client: httpx.AsyncClient, seed) -> None:
    await seed.apply(seed.make("t1"))
    changes = {
        "name": "𝄞 naïve\ttab",
        "tags": ["\x01", "☕"],
        "metadata": {"😀": ["\u2028", 10**30, -1.5]},
    }
    response = await client.patch("/admin/runs/run-1", json=changes)
    assert response.status_code == 200, response.text
    assert {key: (await get_run(client))[key] for key in changes} == changes


@pytest.mark.parametrize(
    "content",
    [
        b'{"name": "\\ud800"}',
        b'{"description": "x\\udfff"}',
        b'{"tags": ["\\udc00"]}',
        b'{"metadata": {"\\ud800": 1}}',
        b'{"metadata": {"k": ["\\udbff"]}}',
    ],
)
async def test_a_lone_surrogate_is_refused_and_changes_nothing(
    client: httpx.AsyncClient, seed, content: bytes
) -> None:
    """No database can store one (UTF-8 has no such character). msgspec refuses it as bad JSON
    (param `body`); were it let through, the field's own check names the field."""
    await seed.apply(seed.make("t1"))
    before = await get_run(client)
    field = next(iter(json.loads(content)))
    headers = {"Content-Type": "application/json"}
    response = await client.patch("/admin/runs/run-1", content=content, headers=headers)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] in {field, "body"}
    assert await get_run(client) == before


async def test_a_patch_body_over_the_size_limit_is_413_and_changes_nothing(
    client: httpx.AsyncClient, seed
) -> None:
    """The attacker's 7.4 MB of tags and metadata: refused as the body is read."""
    await seed.apply(seed.make("t1"))
    before = await get_run(client)
    body = {"tags": ["t" * 150] * 25_000, "metadata": {"k": "x" * 3_600_000}}
    content = as_json(body)
    assert len(content) > MAX_PATCH_BYTES
    headers = {"Content-Type": "application/json"}
    response = await client.patch("/admin/runs/run-1", content=content, headers=headers)
    assert response.status_code == 413, response.text
    error = response.json()["error"]
    assert (error["type"], error["param"]) == ("invalid_request_error", "body")
    assert await get_run(client) == before


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("PATCH", "/admin/runs/run-1%00"),
        ("DELETE", "/admin/runs/run-1%00"),
        ("DELETE", "/admin/runs/run-1%00?purge=true"),
        ("POST", "/admin/runs/run-1%00/restore"),
        ("PATCH", f"/admin/runs/{'r' * 129}"),
    ],
)
async def test_changes_to_an_id_no_run_can_have_are_400(
    client: httpx.AsyncClient, seed, method: str, path: str
) -> None:
    await seed.apply(seed.make("t1"))
    before = await get_run(client)
    response = await client.request(method, path, json={"name": "x"} if method == "PATCH" else None)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == "run_id"
    assert await get_run(client) == before
