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
from typing import Literal

from genai_prices.data import providers as BUNDLED_PROVIDERS
from genai_prices.data_snapshot import find_provider_by_id
from genai_prices.types import ModelInfo, ModelPrice, Provider, TieredPrices

from pricing.price import Price

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
    with a `provider/` prefix stripped; `provider` is the airuns provider name.

    genai-prices matches by its own rules (case-insensitive, dated snapshots such as
    `gpt-4o-mini-2024-07-18`). The genai-prices provider a call is priced by is the airuns
    provider's `price_as` (config `providers.<name>.price_as`: an Azure deployment priced as
    `openai`), else its own name. When genai-prices knows that provider (`openai`, `anthropic`,
    or a name its aliases claim, such as `bedrock`), only that provider's prices apply: a known
    provider narrows the match, and so does a known `provider/` prefix on the model name when no
    provider is given. When it does not (`mock`, `azure-east`, no provider at all), the
    model is looked up across all genai-prices providers, because the model name is then all we
    know. The name is searched as given and, for `x/model`, as `model`; when several providers
    list it, the first by this rule wins:
    1. a provider whose `model_match` claims the name (`gpt-…` → openai, `claude…` → anthropic);
    2. a provider others resell from (named in a `fallback_model_providers`: openai over azure);
    3. the name as given over the name without its prefix;
    4. genai-prices' own provider order (alphabetical by id in its bundled data).

    genai-prices' data is reduced to one price per kind of token:
    - tiered prices (a different rate above N input tokens) → the base, lowest tier;
    - time-conditional prices (new list prices, off-peak hours) → those active at `at`;
    - service-tier variants (batch, flex, priority) → ignored: the standard price;
    - `cache_write` is the default (5-minute) cache-write price.
    A model priced per request or per unit other than tokens has no quote.

    `price_as` maps airuns provider names to genai-prices provider ids; an unknown id raises
    `ValueError`. `providers` replaces genai-prices' bundled data (a seam for tests).
    """

    def __init__(
        self,
        overrides: Mapping[str, Price],
        *,
        price_as: Mapping[str, str] | None = None,
        providers: Sequence[Provider] | None = None,
        cache_size: int = 4096,
    ) -> None:
        self._overrides = dict(overrides)
        self._providers = list(BUNDLED_PROVIDERS if providers is None else providers)
        self._price_as = _checked_price_as(price_as or {}, self._providers)
        self._origins = _resold_provider_ids(self._providers)
        # Called per task by the writer; bounded, because clients choose the model names.
        self._match = functools.lru_cache(maxsize=cache_size)(self._find_model)
        self._quote_at = functools.lru_cache(maxsize=cache_size)(self._lookup)

    def lookup(
        self,
        model: str,
        provider: str | None = None,
        *,
        at: datetime | None = None,
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
        priced_as = self._priced_as(provider)
        for model in names:
            match = self._match(model.lower(), priced_as)
            if match and (quote := _quote(*match, at)):
                return quote
        return None

    def _priced_as(self, provider: str | None) -> str | None:
        """The genai-prices provider id (lower-cased, as genai-prices compares them) that prices
        calls through the airuns `provider`: its configured `price_as`, else its name."""
        if not provider:
            return None
        return self._price_as.get(provider.lower(), provider.lower())

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
        caches; a `provider/model` ref is retried as `model` with that provider (its `price_as`
        applies). A provider genai-prices knows, given or as the prefix, narrows the match: no
        search of all providers then, so `azure-east/claude-…` priced as openai stays unpriced."""
        prefix, slash, bare = ref.partition("/")
        candidates = [(ref, provider)]
        if slash and bare:
            candidates.append((bare, provider or self._price_as.get(prefix, prefix)))
        resolved = [(model_ref, self._known_provider(pid)) for model_ref, pid in candidates]
        if not any(found for _, found in resolved):
            return self._find_anywhere([model_ref for model_ref, _ in resolved])
        for model_ref, found in resolved:
            if found and (model := found.find_model(model_ref, all_providers=self._providers)):
                return found, model
        return None

    def _known_provider(self, provider_id: str | None) -> Provider | None:
        return find_provider_by_id(self._providers, provider_id) if provider_id else None

    def _find_anywhere(self, refs: Sequence[str]) -> Match | None:
        """The model in all providers' own lists (not their resale fallbacks), first by the rule
        in the class docstring; `min` keeps genai-prices' order among equals."""
        ranked = [
            (self._preference(p, ref, index), p, m)
            for index, ref in enumerate(refs)
            for p in self._providers
            if (m := p.find_model(ref)) is not None
        ]
        best = min(ranked, key=lambda entry: entry[0], default=None)
        return (best[1], best[2]) if best else None

    def _preference(self, provider: Provider, ref: str, ref_index: int) -> tuple[bool, bool, int]:
        return (not _claims_model(provider, ref), provider.id not in self._origins, ref_index)


def genai_provider_ids(providers: Sequence[Provider] | None = None) -> frozenset[str]:
    """The provider ids `price_as` may name: genai-prices' bundled providers by default."""
    return frozenset(p.id for p in (BUNDLED_PROVIDERS if providers is None else providers))


def _checked_price_as(price_as: Mapping[str, str], providers: Sequence[Provider]) -> dict[str, str]:
    """Lower-cased, as lookups compare names; an unknown id is refused rather than leaving the
    provider silently unpriced (settings report it first, naming the config key)."""
    known = genai_provider_ids(providers)
    for name, provider_id in price_as.items():
        if provider_id.lower() not in known:
            raise ValueError(
                f"price_as of provider {name!r}: unknown genai-prices provider {provider_id!r}"
            )
    return {name.lower(): provider_id.lower() for name, provider_id in price_as.items()}


def _resold_provider_ids(providers: Sequence[Provider]) -> frozenset[str]:
    """Providers whose models others resell (azure falls back to openai): a model's origin."""
    return frozenset(pid for p in providers for pid in p.fallback_model_providers or ())


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
