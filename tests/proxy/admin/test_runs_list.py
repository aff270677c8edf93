"""GET /admin/runs: filters, sorts and keyset pages that neither skip nor repeat a run while
new runs arrive between pages."""

from datetime import timedelta
from typing import Any

import httpx
import pytest

from persistence.record import RunInfo
from pricing.usage import Usage

SORTS = ["recent", "oldest", "name", "cost", "tokens", "messages"]
SORT_KEY = {
    "recent": ("last_message_at", True),
    "oldest": ("last_message_at", False),
    "name": ("name", False),
    "cost": ("total_cost", True),
    "tokens": ("total_tokens", True),
    "messages": ("message_count", True),
}
NAMES = ["Alpha", "Bravo", "alpha", "Charlie", "Delta"]


def user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


def run_records(seed, number: int, *, started: float, name: str, size: int) -> list:
    """One run whose sort keys all depend on `size` (ties for equal sizes)."""
    tokens = Usage(prompt_tokens=100 * size, completion_tokens=10 * size, total_tokens=110 * size)
    messages = [user(f"m{i}") for i in range(size + 1)]
    run = RunInfo(id=f"run-{number:03d}", name=name, source_type="chat" if number % 2 else "agent")
    request = {"model": "airuns-test-priced", "messages": messages}
    return [
        seed.make(f"task-{number:03d}", run=run, started=started, usage=tokens, request=request)
    ]


async def seed_runs(seed, count: int = 27) -> list[str]:
    records = []
    for number in range(count):
        name = NAMES[number % len(NAMES)]
        records += run_records(seed, number, started=60 * (number // 2), name=name, size=number % 4)
    await seed.apply(*records)
    return [f"run-{number:03d}" for number in range(count)]


async def insert_newcomers(seed, page: int) -> None:
    """Runs that sort before the cursor (first page), in the middle, and at the end."""
    first = run_records(seed, 900 + page, started=10_000 + page, name=f"0-new-{page}", size=9)
    middle = run_records(seed, 950 + page, started=500 + page, name="Bravo", size=2)
    last = run_records(seed, 980 + page, started=-10_000 - page, name=f"zz-new-{page}", size=0)
    await seed.apply(*first, *middle, *last)


async def walk(client: httpx.AsyncClient, sort: str, seed=None, limit: int = 5) -> list[dict]:
    seen, cursor, page = [], None, 0
    while True:
        params: dict[str, Any] = {"sort": sort, "limit": limit}
        if cursor:
            params["cursor"] = cursor
        response = await client.get("/admin/runs", params=params)
        assert response.status_code == 200, response.text
        body = response.json()
        assert len(body["data"]) <= limit
        seen += body["data"]
        if not body["has_more"]:
            assert body["next_cursor"] is None
            return seen
        cursor, page = body["next_cursor"], page + 1
        if seed is not None:
            await insert_newcomers(seed, page)


def assert_sorted(runs: list[dict], sort: str) -> None:
    column, descending = SORT_KEY[sort]
    keys = [(run[column], run["id"]) for run in runs]
    assert keys == sorted(keys, reverse=descending)


@pytest.mark.parametrize("sort", SORTS)
async def test_pages_have_no_gaps_or_duplicates_while_runs_arrive(
    client: httpx.AsyncClient, seed, sort: str
) -> None:
    original = await seed_runs(seed)
    seen = await walk(client, sort, seed=seed)
    ids = [run["id"] for run in seen]
    assert len(ids) == len(set(ids)), "a run was listed twice"
    assert set(original) <= set(ids), f"runs skipped: {set(original) - set(ids)}"
    assert_sorted(seen, sort)
    everything = (await client.get("/admin/runs", params={"sort": sort, "limit": 200})).json()
    expected = [run["id"] for run in everything["data"] if run["id"] in set(original)]
    assert [i for i in ids if i in set(original)] == expected


@pytest.mark.parametrize("sort", SORTS)
async def test_each_sort_orders_runs_with_ties_broken_by_id(
    client: httpx.AsyncClient, seed, sort: str
) -> None:
    await seed_runs(seed, count=12)
    seen = await walk(client, sort, limit=200)
    assert len(seen) == 12
    assert_sorted(seen, sort)


async def test_default_sort_is_most_recent_first_with_20_per_page(
    client: httpx.AsyncClient, seed
) -> None:
    await seed_runs(seed, count=25)
    body = (await client.get("/admin/runs")).json()
    assert set(body) == {"data", "has_more", "next_cursor"}
    assert len(body["data"]) == 20 and body["has_more"] is True
    assert_sorted(body["data"], "recent")
    assert "messages" not in body["data"][0]  # only detail views carry the conversation


async def test_a_cursor_from_another_sort_is_refused(client: httpx.AsyncClient, seed) -> None:
    await seed_runs(seed, count=3)
    cursor = (await client.get("/admin/runs?sort=cost&limit=1")).json()["next_cursor"]
    for sort in ("recent", "tokens"):
        response = await client.get("/admin/runs", params={"sort": sort, "cursor": cursor})
        assert response.status_code == 400
        assert response.json()["error"]["param"] == "cursor"
    tasks = await client.get("/admin/tasks", params={"cursor": cursor})
    assert tasks.json()["error"]["param"] == "cursor"


async def query_ids(client: httpx.AsyncClient, **params: Any) -> list[str]:
    response = await client.get("/admin/runs", params=params | {"sort": "oldest"})
    assert response.status_code == 200, response.text
    return [run["id"] for run in response.json()["data"]]


async def test_filters(client: httpx.AsyncClient, seed) -> None:
    await seed.apply(
        seed.make("t1", run=RunInfo("r1", name="Quarterly REPORT", source_type="chat")),
        seed.make("t2", run=RunInfo("r2", name="report_50%", source_type="agent"), started=60,
                  user_id="alice", model="fast", upstream_model="gpt-4o-mini",
                  response_model="gpt-4o-mini-2024-07-18"),
        seed.make("t3", run=RunInfo("r3", name="Other"), started=120, user_id="bob"),
        seed.make("t4", run=RunInfo("r4", name="Archived report"), started=180),
    )  # fmt: skip
    await client.patch("/admin/runs/r1", json={"is_starred": True})
    await client.patch("/admin/runs/r4", json={"status": "archived"})
    assert await query_ids(client) == ["r1", "r2", "r3"]
    assert await query_ids(client, starred="true") == ["r1"]
    assert await query_ids(client, starred="false") == ["r2", "r3"]
    assert await query_ids(client, q="report") == ["r1", "r2"]
    assert await query_ids(client, q="50%") == ["r2"]
    assert await query_ids(client, q="REPORT", status="all") == ["r1", "r2", "r4"]
    assert await query_ids(client, source_type="agent") == ["r2"]
    assert await query_ids(client, user_id="alice") == ["r2"]
    for model in ("fast", "gpt-4o-mini", "gpt-4o-mini-2024-07-18"):
        assert await query_ids(client, model=model) == ["r2"]
    assert await query_ids(client, model="gpt-4o") == []


async def test_status_filter(client: httpx.AsyncClient, seed) -> None:
    await seed.apply(*(seed.make(f"t{i}", run=f"r{i}", started=i) for i in range(4)))
    await client.patch("/admin/runs/r1", json={"status": "archived"})
    await client.delete("/admin/runs/r2")
    assert await query_ids(client) == ["r0", "r3"]
    assert await query_ids(client, status="active") == ["r0", "r3"]
    assert await query_ids(client, status="archived") == ["r1"]
    assert await query_ids(client, status="deleted") == ["r2"]
    assert await query_ids(client, status="all") == ["r0", "r1", "r2", "r3"]


async def test_since_and_until_bound_the_last_message(client: httpx.AsyncClient, seed) -> None:
    await seed.apply(*(seed.make(f"t{i}", run=f"r{i}", started=3600 * i) for i in range(4)))
    t0 = seed.t0 + timedelta(seconds=1)  # last_message_at = start + 1 s
    at = [(t0 + timedelta(hours=i)).isoformat() for i in range(4)]
    assert await query_ids(client, since=at[1]) == ["r1", "r2", "r3"]
    assert await query_ids(client, until=at[2]) == ["r0", "r1"]
    assert await query_ids(client, since=at[1], until=at[3]) == ["r1", "r2"]
    zulu = (t0 + timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert await query_ids(client, since=zulu) == ["r3"]
    assert await query_ids(client, since="2026-03-01", until="2026-03-02") == [
        "r0",
        "r1",
        "r2",
        "r3",
    ]
    assert await query_ids(client, since="2026-03-01T13:00:01+01:00") == ["r0", "r1", "r2", "r3"]
