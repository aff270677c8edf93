"""Operational endpoints: health, readiness (with the write backlog) and Prometheus metrics."""

from __future__ import annotations


async def test_healthz_and_readyz_answer_without_a_key(proxy):
    assert (await proxy.client.get("/healthz")).json() == {"status": "ok"}
    ready = await proxy.client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["database"] == "ok" and ready.json()["backlog"] == 0


async def test_readyz_is_503_when_the_database_is_unreachable(proxy_factory):
    config = 'database: {url: "postgresql+asyncpg://nobody@127.0.0.1:9/none"}'
    async with proxy_factory(config) as proxy:
        ready = await proxy.client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["database"].startswith("unreachable")
        # ...and proxying goes on regardless.
        call = await proxy.client.post(
            "/v1/chat/completions",
            json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
        )
        assert call.status_code == 200


async def test_metrics_expose_call_counts_and_overhead(proxy):
    await proxy.client.post(
        "/v1/chat/completions",
        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
    )
    text = (await proxy.client.get("/metrics")).text
    series = 'endpoint="/v1/chat/completions",provider="mock",status="completed"'
    assert f"airuns_requests_total{{{series}}} 1.0" in text
    assert "airuns_overhead_seconds_count 1.0" in text
    await proxy.client.get("/v1/files/file-123")  # pass-through paths share one label
    async with proxy.client.stream(
        "POST",
        "/v1/chat/completions",
        json={
            "model": "gpt-4o-mini",
            "stream": True,
            "messages": [{"role": "user", "content": "x"}],
        },
    ) as response:
        await response.aread()
    text = (await proxy.client.get("/metrics")).text
    assert 'endpoint="other"' in text and "file-123" not in text
    assert 'airuns_time_to_first_token_seconds_count{provider="mock"} 1.0' in text
