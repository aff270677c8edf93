"""Bad query parameters → 400 in the OpenAI shape naming the parameter; unknown routes and
methods keep the shape too. Values the database cannot hold (NUL, date-times past the years
1–9999 once in UTC, cursor keys beyond their column) are bad parameters, never a 500."""

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
    # the offset moves the instant past 9999-12-31 or before 0001-01-01 in UTC
    ("/admin/runs?since=9999-12-31T23:59:59-23:59", "since"),
    ("/admin/runs?since=0001-01-01T00:00:00%2B14:00", "since"),
    ("/admin/runs?until=9999-12-31T23:59:59.999999-00:01", "until"),
    ("/admin/runs?until=0001-01-01T00:00:00%2B00:01", "until"),
    ("/admin/tasks?since=0001-01-01T00:00:00%2B14:00", "since"),
    ("/admin/tasks?until=9999-12-31T23:00:00-01:00", "until"),
    ("/admin/usage?since=0001-01-01T00:00:00%2B14:00", "since"),
    ("/admin/usage?until=9999-12-31T23:59:59-23:59", "until"),
    # NUL: Postgres cannot compare with it, SQLite's LIKE stops at it (q=%00 matched every run)
    ("/admin/runs?q=%00", "q"),
    ("/admin/runs?q=hel%00lo", "q"),
    ("/admin/runs?source_type=%00", "source_type"),
    ("/admin/runs?user_id=u%00", "user_id"),
    ("/admin/runs?model=m%00", "model"),
    ("/admin/tasks?run_id=%00", "run_id"),
    ("/admin/tasks?model=%00", "model"),
    ("/admin/runs/%00", "run_id"),
    ("/admin/runs/run-1%00", "run_id"),
    ("/admin/runs/%00/tasks", "run_id"),
    ("/admin/runs/%00/messages", "run_id"),
    ("/admin/runs/%00/export", "run_id"),
    ("/admin/tasks/%00", "task_id"),
    # longer than any id the id columns hold
    (f"/admin/runs/{'r' * 129}", "run_id"),
    (f"/admin/tasks/{'t' * 129}", "task_id"),
    (f"/admin/tasks?run_id={'r' * 129}", "run_id"),
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


FORGED_CURSORS = [
    ("/admin/runs", "recent", ["9999-12-31T23:59:59-23:59", "run-1"]),
    ("/admin/runs", "oldest", ["0001-01-01T00:00:00+14:00", "run-1"]),
    ("/admin/runs", "cost", ["1e30", "run-1"]),
    ("/admin/runs", "cost", ["-1e30", "run-1"]),
    ("/admin/runs", "cost", ["922337203.6854775808", "run-1"]),
    ("/admin/runs", "cost", ["1E+999999999", "run-1"]),
    ("/admin/runs", "tokens", [10**26, "run-1"]),
    ("/admin/runs", "tokens", [-(10**26), "run-1"]),
    ("/admin/runs", "tokens", [2**63, "run-1"]),
    ("/admin/runs", "messages", [2**31, "run-1"]),
    ("/admin/runs", "messages", [10**26, "run-1"]),
    ("/admin/runs", "name", ["a\x00", "run-1"]),
    ("/admin/runs", "name", ["\ud800", "run-1"]),
    ("/admin/runs", "recent", ["2026-03-01T12:00:00+00:00", "run\x00"]),
    ("/admin/runs", "recent", ["2026-03-01T12:00:00+00:00", "run\udfff"]),
    ("/admin/tasks", "tasks:newest", ["9999-12-31T23:59:59-23:59", "t1"]),
    ("/admin/tasks", "tasks:newest", ["2026-03-01T12:00:00+00:00", "t\x00"]),
    ("/admin/runs/run-1/tasks", "run_tasks:oldest", ["0001-01-01T00:00:00+00:01", "t1"]),
    ("/admin/runs/run-1/tasks", "run_tasks:oldest", ["2026-03-01T12:00:00+00:00", "\ud800"]),
]


@pytest.mark.parametrize(("path", "sort_or_kind", "key"), FORGED_CURSORS)
async def test_a_forged_cursor_is_400_not_a_database_error(
    client: httpx.AsyncClient, seed, path: str, sort_or_kind: str, key: list
) -> None:
    """Each cursor is stamped for the list and sort it is sent to: only its key is wrong."""
    await seed.apply(seed.make("t1"))
    if ":" in sort_or_kind:
        params = {"cursor": encode_cursor(sort_or_kind, key)}
    else:
        params = {"sort": sort_or_kind, "cursor": encode_cursor(f"runs:{sort_or_kind}", key)}
    response = await client.get(path, params=params)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == "cursor"
    assert "another listing" not in error["message"]


@pytest.mark.parametrize(
    "path",
    [
        "/admin/runs?since=0001-01-01T00:00:00-14:00&until=9999-12-31T23:59:59.999999%2B14:00",
        "/admin/runs?since=0001-01-01&until=9999-12-31",
        "/admin/runs?sort=oldest&until=9999-12-31T23:59:59.999999Z",
        "/admin/tasks?since=0001-01-01T00:00:00Z&until=9999-12-31T23:59:59.999999",
        "/admin/usage?since=0001-01-01T00:00:00-23:59",
        "/admin/usage?until=0001-01-01T00:00:00Z",  # the default 30 days would start in year 0
        "/admin/usage?until=0001-01-02",
    ],
)
async def test_instants_at_the_edges_of_time_are_answered(
    client: httpx.AsyncClient, seed, path: str
) -> None:
    await seed.apply(seed.make("t1"))
    response = await client.get(path)
    assert response.status_code == 200, response.text


async def test_a_nul_search_matches_nothing_rather_than_everything(
    client: httpx.AsyncClient, seed
) -> None:
    """On SQLite `LIKE '%\0%'` stopped at the NUL and matched every run; now it is refused."""
    await seed.apply(seed.make("t1"))
    response = await client.get("/admin/runs", params={"q": "\x00"})
    assert response.status_code == 400
    assert "NUL" in response.json()["error"]["message"]
