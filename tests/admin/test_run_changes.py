"""PATCH, DELETE (soft and purge) and restore: what changes, what answers, and that a
rejected request changes nothing."""

from typing import Any

import httpx
import pytest


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
