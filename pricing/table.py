"""Per-1M-token prices for a model: config overrides layered on genai-prices' data.

Only the data bundled with the installed genai-prices is read: never its `UpdatePrices` fetcher,
nor a snapshot installed with `set_custom_snapshot`. A lookup never touches the network, and
prices change only when the package is upgraded.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Literal

from genai_prices.data import providers as BUNDLED_PROVIDERS
from genai_prices.data_snapshot import find_provider_by_id
from genai_prices.types import ModelInfo, ModelPrice, Provider, TieredPrices

if TYPE_CHECKING:
    from proxy.settings import Price

PriceSource = Literal["override", "genai-prices"]
Match = tuple[Provider, ModelInfo]


@dataclass(frozen=True, slots=True)
class PriceQuote:
    """USD per 1M tokens used to price a call, and where they came from.

    `model` is the override's key or genai-prices' model id (e.g. `gpt-4o-mini` for the dated
    `gpt-4o-mini-2024-07-18`). A price is None when the source has none for that kind of token.
    """

    model: str
    provider: str | None
    input: Decimal | None
    output: Decimal | None
    cached_input: Decimal | None
    cache_write: Decimal | None
    source: PriceSource


class PriceTable:
    """Finds the price of a model: `overrides` (config) first, then genai-prices.

    Overrides match the model name exactly: `provider/model` first, then `model`, then the name
    with a `provider/` prefix stripped. genai-prices matches by its own rules (case-insensitive,
    dated snapshots such as `gpt-4o-mini-2024-07-18`); `provider` narrows the match when
    genai-prices knows it (`openai`, `anthropic`, …), and is ignored when it does not (`mock`).

    genai-prices' data is reduced to one price per kind of token:
    - tiered prices (a different rate above N input tokens) → the base, lowest tier;
    - time-conditional prices (new list prices, off-peak hours) → those active at `at`;
    - service-tier variants (batch, flex, priority) → ignored: the standard price;
    - `cache_write` is the default (5-minute) cache-write price.
    A model priced per request or per unit other than tokens has no quote.

    `providers` replaces genai-prices' bundled data (a seam for tests).
    """

    def __init__(
        self,
        overrides: Mapping[str, Price],
        *,
        providers: Sequence[Provider] | None = None,
        cache_size: int = 4096,
    ) -> None:
        self._overrides = dict(overrides)
        self._providers = list(BUNDLED_PROVIDERS if providers is None else providers)
        # Called per task by the writer; bounded, because clients choose the model names.
        self._match = functools.lru_cache(maxsize=cache_size)(self._find_model)
        self._quote_at = functools.lru_cache(maxsize=cache_size)(self._lookup)

    def lookup(
        self, model: str, provider: str | None = None, *, at: datetime | None = None
    ) -> PriceQuote | None:
        """The price of `model` (served by `provider`) at `at` (default now); None if unknown."""
        return self.lookup_first([model], provider, at=at)

    def lookup_first(
        self,
        models: Iterable[str | None],
        provider: str | None = None,
        *,
        at: datetime | None = None,
    ) -> PriceQuote | None:
        """The price of the first of `models` that has one, most specific name first: the model
        the upstream reported, the one sent upstream, the one the client asked for. An override
        of any of them wins over genai-prices, so a configured price is never bypassed because
        the upstream reported a dated name."""
        names = tuple(model for model in models if model)
        at = at or datetime.now(UTC)
        # The writer asks once per task: quotes are memoised per minute of `at` (prices that
        # change with the time of day change on minute boundaries).
        return self._quote_at(names, provider, at.replace(second=0, microsecond=0))

    def _lookup(
        self, names: tuple[str, ...], provider: str | None, at: datetime
    ) -> PriceQuote | None:
        for model in names:
            if quote := self._override(model, provider):
                return quote
        for model in names:
            match = self._match(model.lower(), provider.lower() if provider else None)
            if match and (quote := _quote(*match, at)):
                return quote
        return None

    def _override(self, model: str, provider: str | None) -> PriceQuote | None:
        prefix, slash, bare = model.partition("/")
        keys = [f"{provider}/{model}"] if provider else []
        keys.append(model)
        if slash and bare:
            keys.append(bare)
            provider = provider or prefix
        for key in keys:
            if (price := self._overrides.get(key)) is not None:
                return _override_quote(key, provider, price)
        return None

    def _find_model(self, ref: str, provider: str | None) -> Match | None:
        """genai-prices' matching, as in `DataSnapshot.find_provider_model`, minus its unbounded
        caches; a `provider/model` ref is retried as `model` with that provider."""
        prefix, slash, bare = ref.partition("/")
        candidates = [(ref, provider)]
        if slash and bare:
            candidates.append((bare, provider or prefix))
        for model_ref, provider_id in candidates:
            if match := self._find_in_provider(model_ref, provider_id):
                return match
        return None

    def _find_in_provider(self, ref: str, provider_id: str | None) -> Match | None:
        found = find_provider_by_id(self._providers, provider_id) if provider_id else None
        if found is None:  # not a genai-prices provider: let the model name pick one
            found = next((p for p in self._providers if _claims_model(p, ref)), None)
        if found is None:
            return None
        model = found.find_model(ref, all_providers=self._providers)
        return (found, model) if model is not None else None


def _claims_model(provider: Provider, ref: str) -> bool:
    return provider.model_match is not None and provider.model_match.is_match(ref)


def _override_quote(key: str, provider: str | None, price: Price) -> PriceQuote:
    return PriceQuote(
        model=key,
        provider=provider,
        input=price.input,
        output=price.output,
        cached_input=price.cached_input,
        cache_write=price.cache_write,
        source="override",
    )


def _quote(provider: Provider, model: ModelInfo, at: datetime) -> PriceQuote | None:
    prices: ModelPrice = model.get_prices(at)
    input_price, output_price = _base(prices.input_mtok), _base(prices.output_mtok)
    if input_price is None and output_price is None:
        return None
    return PriceQuote(
        model=model.id,
        provider=provider.id,
        input=input_price,
        output=output_price,
        cached_input=_base(prices.cache_read_mtok),
        cache_write=_base(prices.cache_write_mtok),
        source="genai-prices",
    )


def _base(price: Decimal | TieredPrices | None) -> Decimal | None:
    """The per-1M price below the first tier: tiers depend on a call's size, a quote does not."""
    return price.base if isinstance(price, TieredPrices) else price
