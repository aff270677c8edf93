"""PriceTable: config overrides, then genai-prices' bundled data, by model name."""

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from genai_prices.data_snapshot import DataSnapshot, set_custom_snapshot
from genai_prices.types import (
    ClauseEquals,
    ClauseStartsWith,
    ConditionalPrice,
    ModelInfo,
    ModelPrice,
    Provider,
    StartDateConstraint,
    Tier,
    TieredPrices,
)

from pricing.cost import compute_cost
from pricing.price import Price
from pricing.table import PriceQuote, PriceTable
from pricing.usage import Usage

D = Decimal
GPT_4O_MINI = PriceQuote(
    "gpt-4o-mini", "openai", D("0.15"), D("0.6"), D("0.075"), None, "genai-prices"
)
GPT_4O = PriceQuote("gpt-4o", "openai", D("2.5"), D("10"), D("1.25"), None, "genai-prices")
CLAUDE_3_5_HAIKU = PriceQuote(
    "claude-3-5-haiku-latest", "anthropic", D("0.8"), D("4"), D("0.08"), D("1"), "genai-prices"
)
EMBEDDING_3_SMALL = PriceQuote(
    "text-embedding-3-small", "openai", D("0.02"), None, None, None, "genai-prices"
)
FINETUNE = Price(input=D("0.30"), output=D("1.20"), cached_input=D("0.03"))


@pytest.fixture(scope="module")
def table() -> PriceTable:
    return PriceTable({})


@pytest.mark.parametrize(
    ("model", "provider", "expected"),
    [
        ("gpt-4o-mini", None, GPT_4O_MINI),
        ("gpt-4o-mini", "openai", GPT_4O_MINI),
        ("gpt-4o-mini-2024-07-18", None, GPT_4O_MINI),
        ("GPT-4o-mini", "OpenAI", GPT_4O_MINI),
        ("gpt-4o-mini", "mock", GPT_4O_MINI),
        ("mock/gpt-4o-mini", None, GPT_4O_MINI),
        ("openai/gpt-4o-mini", None, GPT_4O_MINI),
        ("gpt-4o", "openai", GPT_4O),
        ("gpt-4o-2024-08-06", None, GPT_4O),
        ("claude-3-5-haiku-20241022", "anthropic", CLAUDE_3_5_HAIKU),
        ("claude-3-5-haiku-latest", None, CLAUDE_3_5_HAIKU),
        ("text-embedding-3-small", "openai", EMBEDDING_3_SMALL),
    ],
)
def test_genai_prices_model_is_found_by_its_own_matching(table, model, provider, expected):
    assert table.lookup(model, provider) == expected


@pytest.mark.parametrize(
    ("model", "provider"),
    [
        ("totally-unknown-model-x", None),
        ("totally-unknown-model-x", "openai"),
        ("totally-unknown-model-x", "mock"),
        ("gpt-4o-mini", "anthropic"),  # a known provider narrows the match
        ("text-embedding-3-small", "anthropic"),
        ("anthropic/gpt-4o-mini", None),  # so does a known provider prefix
        ("", None),
    ],
)
def test_model_without_a_price_has_no_quote(table, model, provider):
    assert table.lookup(model, provider) is None


@pytest.mark.parametrize(
    ("model", "provider", "expected"),
    [
        # genai-prices lists embeddings under openai (and azure) only; the model name is all
        # a provider it does not know leaves, so the model is looked up across all providers
        ("text-embedding-3-small", "mock", EMBEDDING_3_SMALL),
        ("text-embedding-3-small", "azure-east", EMBEDDING_3_SMALL),
        ("text-embedding-3-small", None, EMBEDDING_3_SMALL),
        ("mock/text-embedding-3-small", None, EMBEDDING_3_SMALL),
        ("mock/text-embedding-3-small", "mock", EMBEDDING_3_SMALL),
        ("claude-3-5-haiku-latest", "mock", CLAUDE_3_5_HAIKU),
        ("mock/claude-3-5-haiku-latest", None, CLAUDE_3_5_HAIKU),  # not google's `contains`
    ],
)
def test_provider_unknown_to_genai_prices_finds_the_model_across_all(
    table, model, provider, expected
):
    assert table.lookup(model, provider) == expected


def test_embeddings_task_through_an_unknown_provider_is_priced_exactly(table):
    quote = table.lookup_first(["text-embedding-3-small", "mock/text-embedding-3-small"], "mock")
    cost = compute_cost(Usage(prompt_tokens=1234, completion_tokens=0, total_tokens=1234), quote)
    assert (cost.input_cost, cost.output_cost, cost.total_cost) == (
        D("0.00002468"),
        D("0"),
        D("0.00002468"),
    )


AZURE_AS_OPENAI = {"azure-east": "openai", "Claude-Proxy": "ANTHROPIC"}


@pytest.mark.parametrize(
    ("model", "provider", "expected"),
    [
        ("gpt-4o-mini", "azure-east", GPT_4O_MINI),
        ("gpt-4o-2024-08-06", "azure-east", GPT_4O),
        ("text-embedding-3-small", "azure-east", EMBEDDING_3_SMALL),
        ("azure-east/gpt-4o", None, GPT_4O),  # the prefix is the provider: its price_as applies
        ("claude-3-5-haiku-latest", "claude-proxy", CLAUDE_3_5_HAIKU),  # names: any case
        ("claude-3-5-haiku-latest", "azure-east", None),  # price_as narrows like a known name
        ("azure-east/claude-3-5-haiku-latest", None, None),
        ("gpt-4o-mini", "claude-proxy", None),
    ],
)
def test_price_as_prices_a_provider_like_that_genai_prices_provider(model, provider, expected):
    table = PriceTable({}, price_as=AZURE_AS_OPENAI)
    assert table.lookup(model, provider) == expected


def test_price_as_narrows_a_provider_to_its_genai_prices_provider():
    table = PriceTable({}, price_as={"azure-east": "anthropic"})
    assert table.lookup("gpt-4o", "azure-east") is None
    table = PriceTable({}, price_as={"x": "openai"})
    assert table.lookup("claude-3-5-haiku-latest", "x") is None


@pytest.mark.parametrize("price_as", ["x", "opneai", "azure-east"])
def test_price_as_naming_no_genai_prices_provider_is_refused(price_as):
    with pytest.raises(ValueError, match=f"unknown genai-prices provider '{price_as}'"):
        PriceTable({}, price_as={"azure-east": price_as})


def test_overrides_win_over_price_as_and_the_search_across_providers():
    embedding = Price(input=D("0.5"), output=D("0"))
    table = PriceTable(
        {"text-embedding-3-small": embedding, "azure-east/gpt-4o": Price(D("4"), D("9"))},
        price_as=AZURE_AS_OPENAI,
    )
    assert table.lookup("text-embedding-3-small", "mock") == PriceQuote(
        "text-embedding-3-small", "mock", D("0.5"), D("0"), None, None, "override"
    )
    assert table.lookup("gpt-4o", "azure-east") == PriceQuote(
        "azure-east/gpt-4o", "azure-east", D("4"), D("9"), None, None, "override"
    )
    assert table.lookup("gpt-4o", "openai") == GPT_4O  # the override names the airuns provider


def test_override_is_used_for_a_model_genai_prices_does_not_know():
    table = PriceTable({"my-finetune": FINETUNE})
    assert table.lookup("my-finetune", "mock") == PriceQuote(
        "my-finetune", "mock", D("0.30"), D("1.20"), D("0.03"), None, "override"
    )


def test_override_wins_over_genai_prices():
    table = PriceTable({"gpt-4o-mini": Price(input=D("1"), output=D("2"))})
    quote = table.lookup("gpt-4o-mini", "openai")
    assert (quote.source, quote.input, quote.output, quote.cached_input) == (
        "override",
        D("1"),
        D("2"),
        None,
    )
    # only the exact name is overridden: a dated snapshot still gets genai-prices' price
    assert table.lookup("gpt-4o-mini-2024-07-18").source == "genai-prices"


def test_override_matches_the_name_without_its_provider_prefix():
    quote = PriceTable({"my-finetune": FINETUNE}).lookup("mock/my-finetune")
    assert (quote.model, quote.provider, quote.source) == ("my-finetune", "mock", "override")


def test_provider_qualified_override_wins_over_the_bare_name():
    table = PriceTable({"gpt-4o": Price(D("1"), D("1")), "azure/gpt-4o": Price(D("3"), D("3"))})
    assert table.lookup("gpt-4o", "azure").input == D("3")
    assert table.lookup("gpt-4o", "openai").input == D("1")


def test_lookup_first_returns_the_first_model_with_a_price(table):
    models = [None, "totally-unknown-model-x", "gpt-4o-mini-2024-07-18", "gpt-4o"]
    assert table.lookup_first(models, "mock") == GPT_4O_MINI
    assert table.lookup_first([None, "", "totally-unknown-model-x"]) is None


def test_lookup_first_prefers_an_override_of_any_name_over_genai_prices():
    table = PriceTable({"gpt-4o-mini": FINETUNE})
    quote = table.lookup_first(["gpt-4o-mini-2024-07-18", "gpt-4o-mini", "fast"], "openai")
    assert (quote.model, quote.source) == ("gpt-4o-mini", "override")


def test_a_custom_snapshot_does_not_change_prices(table):
    """UpdatePrices installs fetched data with set_custom_snapshot: it must never reach us."""
    set_custom_snapshot(DataSnapshot(providers=[], from_auto_update=True))
    try:
        assert table.lookup("gpt-4o-mini") == GPT_4O_MINI
        assert PriceTable({}).lookup("gpt-4o-mini") == GPT_4O_MINI
    finally:
        set_custom_snapshot(None)


def _provider(*models: ModelInfo, provider_id: str = "acme", **fields) -> Provider:
    return Provider(
        id=provider_id,
        name=provider_id.title(),
        api_pattern=f"https://{provider_id}",
        models=list(models),
        **fields,
    )


def _model(model_id: str, prices: ModelPrice | list[ConditionalPrice]) -> ModelInfo:
    return ModelInfo(id=model_id, match=ClauseEquals(equals=model_id), prices=prices)


def test_tiered_price_quotes_the_base_tier():
    tiered = TieredPrices(base=D("1.25"), tiers=[Tier(start=200_000, price=D("2.5"))])
    model = _model("tiered", ModelPrice(input_mtok=tiered, output_mtok=D("10")))
    quote = PriceTable({}, providers=[_provider(model)]).lookup("tiered", "acme")
    assert (quote.provider, quote.input, quote.output) == ("acme", D("1.25"), D("10"))


def test_conditional_price_is_the_one_active_at_the_call_time():
    prices = [
        ConditionalPrice(prices=ModelPrice(input_mtok=D("1"), output_mtok=D("2"))),
        ConditionalPrice(
            constraint=StartDateConstraint(start_date=date(2025, 6, 1)),
            prices=ModelPrice(input_mtok=D("0.5"), output_mtok=D("1")),
        ),
    ]
    table = PriceTable({}, providers=[_provider(_model("repriced", prices))])
    assert table.lookup("repriced", "acme", at=datetime(2025, 5, 31, tzinfo=UTC)).input == D("1")
    assert table.lookup("repriced", "acme", at=datetime(2025, 6, 1, tzinfo=UTC)).input == D("0.5")


def test_model_not_priced_per_token_has_no_quote():
    per_request = _model("per-request", ModelPrice(requests_kcount=D("5")))
    table = PriceTable(
        {}, providers=[_provider(per_request, _model("tokens", ModelPrice(input_mtok=D("1"))))]
    )
    assert table.lookup("per-request", "acme") is None
    assert table.lookup_first(["per-request", "tokens"], "acme").model == "tokens"


def _lister(provider_id: str, **fields) -> Provider:
    """A provider listing `shared` at a price that tells which provider was chosen."""
    price = ModelPrice(input_mtok=D(len(provider_id)), output_mtok=D("1"))
    return _provider(
        _model("shared", price),
        _model(f"{provider_id}-only", price),
        provider_id=provider_id,
        **fields,
    )


def _sole_lister(provider_id: str, model: str) -> Provider:
    price = ModelPrice(input_mtok=D(len(provider_id)), output_mtok=D("1"))
    return _provider(_model(model, price), provider_id=provider_id)


CLAIMS_SHARED = {"model_match": ClauseStartsWith(starts_with="shared")}


@pytest.mark.parametrize(
    ("providers", "model", "chosen"),
    [
        ([_lister("a"), _lister("bb")], "bb-only", "bb"),  # unique: the one listing it
        ([_lister("a"), _lister("bb")], "shared", "a"),  # several: genai-prices' order
        ([_lister("bb"), _lister("a")], "shared", "bb"),
        ([_lister("a"), _lister("bb", **CLAIMS_SHARED)], "shared", "bb"),  # claims the name
        ([_lister("a", fallback_model_providers=["bb"]), _lister("bb")], "shared", "bb"),  # origin
        ([_lister("bb"), _sole_lister("a", "x/shared")], "x/shared", "a"),  # name as given
        (
            [
                _lister("a", fallback_model_providers=["ccc"]),
                _lister("bb", **CLAIMS_SHARED),
                _lister("ccc"),
            ],
            "shared",
            "bb",  # claiming beats being resold
        ),
    ],
)
def test_unknown_provider_takes_the_unique_match_else_the_first_by_rule(providers, model, chosen):
    quote = PriceTable({}, providers=providers).lookup(model, "mock")
    assert (quote.provider, quote.input) == (chosen, D(len(chosen)))


def test_a_resale_fallback_alone_does_not_count_as_listing_a_model():
    reseller = _provider(provider_id="reseller", fallback_model_providers=["maker"])
    table = PriceTable({}, providers=[reseller, _lister("maker")])
    assert table.lookup("shared", "mock").provider == "maker"
    assert table.lookup("shared", "reseller").provider == "reseller"  # a known name: its own rule


def test_lookups_stay_memoised_and_bounded():
    table = PriceTable({}, cache_size=8)
    for number in range(50):
        assert table.lookup(f"client-chosen-{number}", "mock") is None
    assert table._match.cache_info().currsize <= 8
    assert table._quote_at.cache_info().currsize <= 8
