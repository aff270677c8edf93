"""compute_cost and price_dict: exact Decimal money, checked against genai-prices' own figures."""

import json
from datetime import UTC, datetime
from decimal import Decimal

import genai_prices
import pytest

from pricing.cost import Cost, compute_cost, price_dict
from pricing.table import PriceQuote, PriceTable
from pricing.usage import Usage

D = Decimal
AT = datetime(2025, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def table() -> PriceTable:
    return PriceTable({})


def _quote(input="1", output="2", cached_input=None, cache_write=None) -> PriceQuote:
    def dec(value):
        return None if value is None else D(value)

    return PriceQuote(
        "m", None, dec(input), dec(output), dec(cached_input), dec(cache_write), "override"
    )


def test_gpt_4o_mini_cached_tokens_are_charged_at_the_cached_price(table):
    # gpt-4o-mini (genai-prices): input 0.15, cached input 0.075, output 0.6 USD per 1M
    quote = table.lookup("gpt-4o-mini-2024-07-18", "openai", at=AT)
    usage = Usage(
        prompt_tokens=1_000_000,
        cached_tokens=400_000,
        completion_tokens=500_000,
        reasoning_tokens=100_000,  # part of completion_tokens: output price, charged once
    )
    cost = compute_cost(usage, quote)
    # 600k × 0.15 + 400k × 0.075 = 0.09 + 0.03; 500k × 0.6 = 0.3
    assert cost == Cost(D("0.12"), D("0.3"), D("0.42"))
    expected = genai_prices.calc_price(
        genai_prices.Usage(
            input_tokens=1_000_000, cache_read_tokens=400_000, output_tokens=500_000
        ),
        "gpt-4o-mini",
        provider_id="openai",
        genai_request_timestamp=AT,
    )
    assert (cost.input_cost, cost.output_cost, cost.total_cost) == (
        expected.input_price,
        expected.output_price,
        expected.total_price,
    )


def test_claude_cache_writes_are_added_on_top_of_prompt_tokens(table):
    # claude-3-5-haiku (genai-prices): input 0.8, cache read 0.08, cache write 1, output 4
    quote = table.lookup("claude-3-5-haiku-20241022", "anthropic", at=AT)
    usage = Usage(
        prompt_tokens=2000, cached_tokens=1000, cache_write_tokens=3000, completion_tokens=700
    )
    cost = compute_cost(usage, quote)
    # 1000 × 0.8 + 1000 × 0.08 + 3000 × 1 = 0.0008 + 0.00008 + 0.003; 700 × 4 = 0.0028
    assert cost == Cost(D("0.00388"), D("0.0028"), D("0.00668"))
    # genai-prices counts cache writes inside input_tokens
    expected = genai_prices.calc_price(
        genai_prices.Usage(
            input_tokens=5000, cache_read_tokens=1000, cache_write_tokens=3000, output_tokens=700
        ),
        "claude-3-5-haiku-20241022",
        provider_id="anthropic",
        genai_request_timestamp=AT,
    )
    assert cost.total_cost == expected.total_price


def test_gpt_4o_without_cached_tokens(table):
    # gpt-4o (genai-prices): input 2.5, output 10
    cost = compute_cost(Usage(prompt_tokens=1234, completion_tokens=567), table.lookup("gpt-4o"))
    assert cost == Cost(D("0.003085"), D("0.00567"), D("0.008755"))


def test_embedding_has_no_output_cost(table):
    quote = table.lookup("text-embedding-3-small", "openai")  # input 0.02, no output price
    cost = compute_cost(Usage(prompt_tokens=1000, completion_tokens=0, total_tokens=1000), quote)
    assert cost == Cost(D("0.00002"), D("0"), D("0.00002"))


@pytest.mark.parametrize(
    ("usage", "quote", "expected"),
    [
        # cached tokens without a cached price: the input price
        (
            Usage(prompt_tokens=100, cached_tokens=40, completion_tokens=0),
            _quote(),
            ("0.0001", "0"),
        ),
        # cache writes without a cache-write price: the input price
        (
            Usage(prompt_tokens=100, cache_write_tokens=50, completion_tokens=0),
            _quote(),
            ("0.00015", "0"),
        ),
        # more cached than prompt tokens (a provider quirk): all of the prompt at the cached price
        (
            Usage(prompt_tokens=100, cached_tokens=150, completion_tokens=0),
            _quote(cached_input="0.5"),
            ("0.00005", "0"),
        ),
        # reasoning tokens are inside completion_tokens: charged once, at the output price
        (
            Usage(prompt_tokens=0, completion_tokens=100, reasoning_tokens=60),
            _quote(),
            ("0", "0.0002"),
        ),
    ],
)
def test_cost_follows_token_semantics(usage, quote, expected):
    cost = compute_cost(usage, quote)
    assert (cost.input_cost, cost.output_cost) == (D(expected[0]), D(expected[1]))
    assert cost.total_cost == cost.input_cost + cost.output_cost


@pytest.mark.parametrize(
    ("price_per_million", "cost_of_one_token"),
    [("0.00015", "0.0000000002"), ("0.00025", "0.0000000002"), ("0.00035", "0.0000000004")],
)
def test_costs_round_half_to_even(price_per_million, cost_of_one_token):
    cost = compute_cost(
        Usage(prompt_tokens=1, completion_tokens=0), _quote(input=price_per_million)
    )
    assert cost.input_cost == D(cost_of_one_token)


@pytest.mark.parametrize(
    ("usage", "quote"),
    [
        (Usage(prompt_tokens=None, completion_tokens=10, total_tokens=10), _quote()),
        (Usage(prompt_tokens=10, completion_tokens=None), _quote()),
        (Usage(), _quote()),
        (Usage(prompt_tokens=10, completion_tokens=5), _quote(output=None)),
        (Usage(prompt_tokens=10, completion_tokens=0), _quote(input=None)),
    ],
)
def test_cost_is_unknown_rather_than_zero(usage, quote):
    assert compute_cost(usage, quote) is None


def test_costs_have_ten_decimal_places(table):
    cost = compute_cost(Usage(prompt_tokens=7, completion_tokens=3), table.lookup("gpt-4o-mini"))
    for value in (cost.input_cost, cost.output_cost, cost.total_cost):
        assert value.as_tuple().exponent == -10
    assert str(cost.total_cost) == "0.0000028500"


def test_price_dict_keeps_decimals_exact_as_strings(table):
    assert price_dict(table.lookup("gpt-4o-mini", "openai")) == {
        "model": "gpt-4o-mini",
        "provider": "openai",
        "input": "0.15",
        "output": "0.6",
        "cached_input": "0.075",
        "cache_write": None,
        "source": "genai-prices",
    }


def test_price_dict_is_json_and_never_in_exponent_notation():
    quote = PriceQuote("ft", "mock", D("1E+1"), D("0.30"), None, D("1E-7"), "override")
    stored = json.loads(json.dumps(price_dict(quote)))
    assert (stored["input"], stored["output"], stored["cache_write"]) == ("10", "0.30", "0.0000001")
