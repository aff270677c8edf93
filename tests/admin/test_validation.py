"""Bad query parameters → 400 in the OpenAI shape naming the parameter; unknown routes and
methods keep the shape too."""

import httpx
import pytest

from persistence.queries.cursor import encode_cursor

OTHER_SORT_CURSOR = encode_cursor("runs:name", ["a", "b"])

BAD_REQUESTS = [
    ("/admin/runs?limit=0", "limit"),
    ("/admin/runs?limit=201", "limit"),
    ("/admin/runs?limit=500", "limit"),
    ("/admin/runs?limit=-1", "limit"),
    ("/admin/runs?limit=abc", "limit"),
    ("/admin/runs?limit=1.5", "limit"),
    ("/admin/runs?sort=newest", "sort"),
    ("/admin/runs?sort=", "sort"),
    ("/admin/runs?status=removed", "status"),
    ("/admin/runs?starred=maybe", "starred"),
    ("/admin/runs?since=yesterday", "since"),
    ("/admin/runs?until=2026-13-01", "until"),
    ("/admin/runs?since=2026-03-02&until=2026-03-01", "since"),
    ("/admin/runs?cursor=garbage!!", "cursor"),
    ("/admin/runs?cursor=e30", "cursor"),
    (f"/admin/runs?cursor={OTHER_SORT_CURSOR}", "cursor"),
    ("/admin/runs/run-1/tasks?limit=0", "limit"),
    (f"/admin/runs/run-1/tasks?cursor={OTHER_SORT_CURSOR}", "cursor"),
    ("/admin/runs/run-1/export?format=pdf", "format"),
    ("/admin/tasks?status=done", "status"),
    ("/admin/tasks?limit=1000", "limit"),
    ("/admin/tasks?since=not-a-date", "since"),
    ("/admin/tasks?cursor=%%%", "cursor"),
    ("/admin/usage?group_by=week", "group_by"),
    ("/admin/usage?since=last-month", "since"),
    ("/admin/usage?until=2026-02-30", "until"),
    ("/admin/pricing", "model"),
    ("/admin/runs?sort_by=cost", "sort_by"),
    ("/admin/runs/run-1?verbose=1", "verbose"),
    ("/admin/usage?group=model", "group"),
]


@pytest.mark.parametrize(("path", "param"), BAD_REQUESTS)
async def test_bad_parameters_are_400_naming_the_parameter(
    client: httpx.AsyncClient, seed, path: str, param: str
) -> None:
    await seed.apply(seed.make("t1"))
    response = await client.get(path)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "code", "param"}
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert param in error["message"] or error["message"]


async def test_limit_bounds_are_accepted(client: httpx.AsyncClient, seed) -> None:
    await seed.apply(seed.make("t1"))
    for limit in (1, 200):
        assert (await client.get(f"/admin/runs?limit={limit}")).status_code == 200


async def test_unknown_routes_are_404_in_the_openai_shape(client: httpx.AsyncClient) -> None:
    response = await client.get("/admin/nothing-here")
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "not_found_error"


async def test_wrong_methods_are_405_in_the_openai_shape(client: httpx.AsyncClient) -> None:
    response = await client.put("/admin/runs/run-1", json={})
    assert response.status_code == 405
    error = response.json()["error"]
    assert (error["type"], error["code"]) == ("invalid_request_error", "method_not_allowed")


async def test_a_mistyped_query_parameter_on_delete_changes_nothing(
    client: httpx.AsyncClient, seed
) -> None:
    await seed.apply(seed.make("t1"))
    before = (await client.get("/admin/runs/run-1")).json()
    response = await client.delete("/admin/runs/run-1?purg=true")
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "purg"
    assert (await client.get("/admin/runs/run-1")).json() == before
