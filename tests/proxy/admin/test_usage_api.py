"""GET /admin/usage: grouping, exact Decimal cost sums, TTFT percentiles (from the rollups'
histogram), the default window."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest

from persistence.ttft_histogram import RELATIVE_ERROR
from pricing.usage import Usage

ROW_FIELDS = {
    "key", "requests", "errors", "prompt_tokens", "completion_tokens", "total_tokens", "cost",
    "ttft_p50_ms", "ttft_p95_ms",
}  # fmt: skip
WINDOW = {"since": "2026-03-01T00:00:00Z", "until": "2026-03-03T00:00:00Z"}
SMALL = Usage(prompt_tokens=1, completion_tokens=1, total_tokens=2)  # 0.00001 USD


async def seed_usage(seed) -> None:
    day2 = 86400
    await seed.apply(
        seed.make("a", run="r1", started=0, ttft_ms=100.0, stream=True, user_id="u1"),
        seed.make("b", run="r1", started=1, ttft_ms=200.0, stream=True, user_id="u1", usage=SMALL),
        seed.make("c", run="r2", started=2, ttft_ms=300.0, stream=True, status="error", usage=None),
        seed.make("d", run="r2", started=3, ttft_ms=400.0, stream=True, status="timeout",
                  usage=None),
        seed.make("e", run=None, started=day2, model="gpt-4o-mini", provider="openai",
                  upstream_model="gpt-4o-mini", usage=SMALL),
        seed.make("f", run="r3", started=day2 + 1, model="no-price-model", usage=SMALL),
        seed.make("old", run="r3", started=-86400 * 3),
    )  # fmt: skip


async def usage(client: httpx.AsyncClient, body, **params: str) -> list[dict]:
    response = await client.get("/admin/usage", params=params)
    assert response.status_code == 200, response.text
    document = body(response)
    assert set(document) == {"data"}
    return document["data"]


async def test_usage_by_day(client: httpx.AsyncClient, seed, body) -> None:
    await seed_usage(seed)
    day1, day2 = await usage(client, body, group_by="day", **WINDOW)
    assert set(day1) == ROW_FIELDS
    # From the TTFT histogram: within its bound of percentile_cont (250 and 385 exactly).
    assert float(day1.pop("ttft_p50_ms")) == pytest.approx(250.0, rel=RELATIVE_ERROR)
    assert float(day1.pop("ttft_p95_ms")) == pytest.approx(385.0, rel=RELATIVE_ERROR)
    assert day1 == {
        "key": "2026-03-01",
        "requests": 4,
        "errors": 2,
        "prompt_tokens": 1001,
        "completion_tokens": 101,
        "total_tokens": 1102,
        "cost": Decimal("0.00371"),
    }
    assert (day2["key"], day2["requests"], day2["errors"]) == ("2026-03-02", 2, 0)
    gpt_4o_mini = 1 * Decimal("0.15") / 10**6 + 1 * Decimal("0.6") / 10**6
    assert day2["cost"] == gpt_4o_mini  # the unpriced task adds nothing, not a made-up 0
    assert (day2["ttft_p50_ms"], day2["ttft_p95_ms"]) == (None, None)


async def test_usage_defaults_to_days(client: httpx.AsyncClient, seed, body) -> None:
    await seed_usage(seed)
    rows = await usage(client, body, **WINDOW)
    assert [row["key"] for row in rows] == ["2026-03-01", "2026-03-02"]


@pytest.mark.parametrize(
    ("group_by", "expected"),
    [
        ("model", [("airuns-test-priced", 4, 2), ("gpt-4o-mini", 1, 0), ("no-price-model", 1, 0)]),
        ("provider", [("mock", 5, 2), ("openai", 1, 0)]),
        ("user", [(None, 4, 2), ("u1", 2, 0)]),
        ("run", [("r1", 2, 0), ("r2", 2, 2), ("r3", 1, 0), (None, 1, 0)]),
    ],
)
async def test_usage_by_other_keys(
    client: httpx.AsyncClient, seed, body, group_by: str, expected: list
) -> None:
    await seed_usage(seed)
    rows = await usage(client, body, group_by=group_by, **WINDOW)
    assert [(row["key"], row["requests"], row["errors"]) for row in rows] == expected


async def test_usage_by_model_sums_cost_exactly(client: httpx.AsyncClient, seed, body) -> None:
    await seed_usage(seed)
    rows = {row["key"]: row for row in await usage(client, body, group_by="model", **WINDOW)}
    assert rows["airuns-test-priced"]["cost"] == Decimal("0.0037") + Decimal("0.00001")
    assert rows["no-price-model"]["cost"] is None
    p50 = float(rows["airuns-test-priced"]["ttft_p50_ms"])
    assert p50 == pytest.approx(250.0, rel=RELATIVE_ERROR)


async def test_usage_default_window_is_the_last_30_days(
    client: httpx.AsyncClient, seed, body
) -> None:
    now = datetime.now(UTC)
    await seed.apply(
        seed.make("recent", run="r", started_at=now - timedelta(days=2)),
        seed.make("month-ago", run="r", started_at=now - timedelta(days=29)),
        seed.make("too-old", run="r", started_at=now - timedelta(days=31)),
    )
    for group_by, key in (("run", "r"), ("provider", "mock")):  # from tasks; from rollups
        rows = await usage(client, body, group_by=group_by)
        assert [(row["key"], row["requests"]) for row in rows] == [(key, 2)]
        until = (now - timedelta(days=30)).isoformat()
        rows = await usage(client, body, group_by=group_by, until=until)
        assert [(row["key"], row["requests"]) for row in rows] == [(key, 1)]


async def test_usage_of_an_empty_window(client: httpx.AsyncClient, body) -> None:
    assert await usage(client, body, group_by="model") == []
