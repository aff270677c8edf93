"""GET /admin/pricing: overrides first, then genai-prices; 404 for an unpriced model."""

from decimal import Decimal

import httpx
import pytest


async def test_an_override_price(client: httpx.AsyncClient, body) -> None:
    response = await client.get("/admin/pricing", params={"model": "airuns-test-priced"})
    assert response.status_code == 200
    assert body(response) == {
        "model": "airuns-test-priced",
        "provider": None,
        "input": 3,
        "output": 7,
        "cached_input": Decimal("1.5"),
        "cache_write": None,
        "source": "override",
    }


async def test_a_genai_prices_price(client: httpx.AsyncClient) -> None:
    response = await client.get("/admin/pricing", params={"model": "gpt-4o-mini"})
    assert response.status_code == 200
    price = response.json()
    assert (price["model"], price["provider"], price["source"]) == (
        "gpt-4o-mini",
        "openai",
        "genai-prices",
    )
    assert (price["input"], price["output"], price["cached_input"]) == (0.15, 0.6, 0.075)


async def test_provider_narrows_the_lookup(client: httpx.AsyncClient) -> None:
    response = await client.get(
        "/admin/pricing", params={"model": "gpt-4o-mini", "provider": "openai"}
    )
    assert response.json()["provider"] == "openai"
    prefixed = await client.get("/admin/pricing", params={"model": "mock/airuns-test-priced"})
    assert prefixed.json()["source"] == "override"


@pytest.mark.parametrize("model", ["no-such-model-anywhere", "airuns-test-priced-2"])
async def test_an_unpriced_model_is_404(client: httpx.AsyncClient, model: str) -> None:
    response = await client.get("/admin/pricing", params={"model": model})
    assert response.status_code == 404
    error = response.json()["error"]
    assert (error["type"], error["param"]) == ("not_found_error", "model")
