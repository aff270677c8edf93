"""GET /admin/pricing: overrides first, then genai-prices; 404 for an unpriced model. The price
shown is the one tasks are priced with: a provider's `price_as` applies, and a provider
genai-prices does not know (or none) has the model looked up across all its providers."""

from decimal import Decimal
from typing import Any

import httpx
import pytest

from pricing.table import PriceTable
from pricing.usage import Usage
from proxy.settings import Settings
from tests.proxy.admin.conftest import CONFIG, make_settings

PRICED_AS = """
  azure-east: {base_url: "https://example.openai.azure.com/openai/v1", price_as: openai}
  fast-oss: {base_url: "https://fast-oss.example/v1", price_as: cerebras}
"""
D = Decimal
EMBEDDING = {
    "model": "text-embedding-3-small",
    "provider": "openai",
    "input": D("0.02"),
    "output": None,
    "cached_input": None,
    "cache_write": None,
    "source": "genai-prices",
}


@pytest.fixture
def settings() -> Settings:
    return make_settings(CONFIG.replace("providers:\n", "providers:" + PRICED_AS, 1))


@pytest.fixture
def seed(seed: Any, settings: Settings) -> Any:
    """Writes through a price table built as the app builds the writer's: with `price_as`."""
    seed.prices = PriceTable(settings.pricing.overrides, price_as=settings.price_as())
    return seed


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


async def price(client: httpx.AsyncClient, body: Any, **params: str) -> Any:
    response = await client.get("/admin/pricing", params=params)
    return body(response) if response.status_code == 200 else response.status_code


@pytest.mark.parametrize("provider", [None, "mock", "azure-east", "openai", "no-such-provider"])
async def test_embeddings_price_is_found_without_or_through_any_provider(
    client: httpx.AsyncClient, body: Any, provider: str | None
) -> None:
    params = {"model": "text-embedding-3-small"} | ({"provider": provider} if provider else {})
    assert await price(client, body, **params) == EMBEDDING


@pytest.mark.parametrize(
    ("model", "provider", "expected"),
    [
        ("claude-3-5-haiku-latest", None, ("anthropic", D("0.8"), D("4"))),
        ("claude-3-5-haiku-latest", "mock", ("anthropic", D("0.8"), D("4"))),
        ("claude-3-5-haiku-latest", "azure-east", 404),  # priced as openai: no claude there
        ("gpt-4o", "azure-east", ("openai", D("2.5"), D("10"))),
        ("gpt-oss-120b", None, ("openai", D("0.039"), D("0.18"))),
        ("gpt-oss-120b", "fast-oss", ("cerebras", D("0.35"), D("0.75"))),
    ],
)
async def test_provider_applies_its_price_as(
    client: httpx.AsyncClient, body: Any, model: str, provider: str | None, expected: Any
) -> None:
    params = {"model": model} | ({"provider": provider} if provider else {})
    found = await price(client, body, **params)
    if isinstance(found, dict):
        found = (found["provider"], found["input"], found["output"])
    assert found == expected


async def test_the_price_shown_is_the_one_tasks_are_priced_with(
    client: httpx.AsyncClient, body: Any, seed: Any
) -> None:
    embeddings = Usage(prompt_tokens=1234, completion_tokens=0, total_tokens=1234)
    tasks = {  # task id: (provider, model sent upstream, cost)
        "e-mock": ("mock", "text-embedding-3-small", D("0.00002468")),
        "e-azure": ("azure-east", "text-embedding-3-small", D("0.00002468")),
        "oss": ("fast-oss", "gpt-oss-120b", D("0.000425")),  # 1000 × 0.35/1M + 100 × 0.75/1M
    }
    await seed.apply(
        *(
            seed.make(
                task_id,
                model=f"{provider}/{model}",
                upstream_model=model,
                provider=provider,
                usage=embeddings if task_id.startswith("e-") else seed.usage,
            )
            for task_id, (provider, model, _) in tasks.items()
        )
    )
    for task_id, (provider, model, cost) in tasks.items():
        task = body(await client.get(f"/admin/tasks/{task_id}"))
        assert task["cost"] == cost
        assert task["price"] == await price(client, body, model=model, provider=provider)


async def test_a_task_through_a_provider_priced_as_one_without_the_model_is_unpriced(
    client: httpx.AsyncClient, body: Any, seed: Any
) -> None:
    await seed.apply(
        seed.make("c1", model="claude-3-5-haiku-latest", provider="azure-east"),
        seed.make("c2", model="claude-3-5-haiku-latest", provider="mock"),
    )
    assert body(await client.get("/admin/tasks/c1"))["cost"] is None
    assert body(await client.get("/admin/tasks/c2"))["cost"] == D("0.0012")  # 1000×0.8 + 100×4


async def test_price_as_is_configuration_not_a_query_parameter(client: httpx.AsyncClient) -> None:
    params = {"model": "gpt-4o", "provider": "mock", "price_as": "openai"}
    response = await client.get("/admin/pricing", params=params)
    assert (response.status_code, response.json()["error"]["param"]) == (400, "price_as")
