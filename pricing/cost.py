"""The cost of a call: token usage × per-1M-token prices, in exact `Decimal` arithmetic.

Pure. Token semantics follow OpenAI: cached tokens are part of `prompt_tokens` and are charged
at the cached price (the input price when there is none); reasoning tokens are part of
`completion_tokens` and are charged as output, once. Cache-write tokens are assumed to be
reported *beside* `prompt_tokens`, as Anthropic's `cache_creation_input_tokens` is, so they are
added on top at the cache-write price (the input price when there is none).

A count the provider did not report makes the cost unknown (None), never a made-up 0; so do
tokens of a kind the quote has no price for. Costs are rounded half-to-even to 10 decimal
places, the scale of the NUMERIC(20,10) columns they are stored in; `total_cost` is the sum of
the rounded parts, so the three always add up.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Context, Decimal, localcontext

from pricing.table import PriceQuote
from pricing.usage import Usage

PER_MILLION = Decimal(1_000_000)
COST_PLACES = Decimal("1E-10")
# Wide enough that no product or quotient is rounded before the final quantize.
_CONTEXT = Context(prec=50, rounding=ROUND_HALF_EVEN)


@dataclass(frozen=True, slots=True)
class Cost:
    """USD."""

    input_cost: Decimal
    output_cost: Decimal
    total_cost: Decimal


def compute_cost(usage: Usage, quote: PriceQuote) -> Cost | None:
    """`usage` priced by `quote`; None when the cost cannot be known."""
    prompt, completion = usage.prompt_tokens, usage.completion_tokens
    if prompt is None or completion is None:
        return None
    with localcontext(_CONTEXT):
        input_cost = _input_cost(usage, prompt, quote)
        output_cost = _charge(completion, quote.output)
        if input_cost is None or output_cost is None:
            return None
        input_cost, output_cost = _round(input_cost), _round(output_cost)
        return Cost(input_cost, output_cost, input_cost + output_cost)


def price_dict(quote: PriceQuote) -> dict[str, str | None]:
    """The quote as stored on a task (frozen at call time): decimals as strings, to stay exact."""
    return {
        "model": quote.model,
        "provider": quote.provider,
        "input": _decimal_str(quote.input),
        "output": _decimal_str(quote.output),
        "cached_input": _decimal_str(quote.cached_input),
        "cache_write": _decimal_str(quote.cache_write),
        "source": quote.source,
    }


def _input_cost(usage: Usage, prompt: int, quote: PriceQuote) -> Decimal | None:
    cached = min(usage.cached_tokens or 0, prompt)  # a subset: never more than the whole
    parts = (
        _charge(prompt - cached, quote.input),
        _charge(cached, _or(quote.cached_input, quote.input)),
        _charge(usage.cache_write_tokens or 0, _or(quote.cache_write, quote.input)),
    )
    if any(part is None for part in parts):
        return None
    return sum(parts, Decimal(0))  # type: ignore[arg-type]


def _charge(tokens: int, price_per_million: Decimal | None) -> Decimal | None:
    """None when there are tokens to charge but no price for them."""
    if tokens == 0:
        return Decimal(0)
    if price_per_million is None:
        return None
    return tokens * price_per_million / PER_MILLION


def _or(price: Decimal | None, fallback: Decimal | None) -> Decimal | None:
    return fallback if price is None else price


def _round(cost: Decimal) -> Decimal:
    return cost.quantize(COST_PLACES, rounding=ROUND_HALF_EVEN)


def _decimal_str(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")  # "10", never "1E+1"
