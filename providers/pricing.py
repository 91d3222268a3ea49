"""Model prices (genai-prices catalog, overridden per model by config) and the cost of a call."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal

from genai_prices import data_snapshot
from genai_prices.types import ModelPrice, TieredPrices

from providers.profiles import catalog_provider
from schemas.completion import Usage
from schemas.config import ModelConfig, ProviderConfig
from schemas.errors import ConfigError

PER_MTOK = 1_000_000
PRICE_FIELDS = (
    "input_per_mtok",
    "output_per_mtok",
    "cached_input_per_mtok",
    "cache_write_per_mtok",
)
# our config field -> the catalog's price key
_CATALOG_KEYS = {
    "input_per_mtok": "input_mtok",
    "output_per_mtok": "output_mtok",
    "cached_input_per_mtok": "cache_read_mtok",
    "cache_write_per_mtok": "cache_write_mtok",
}
_PROVIDER_ALIASES = {"gemini": "google", "azure-openai": "azure"}


@dataclass(frozen=True)
class PriceTier:
    """Rates for the whole call once its input exceeds `above_input_tokens` (cliff pricing)."""

    above_input_tokens: int
    input_per_mtok: float
    output_per_mtok: float
    cached_input_per_mtok: float | None = None
    cache_write_per_mtok: float | None = None


@dataclass(frozen=True)
class ModelPrices:
    """USD per million tokens. Cached reads and cache writes cost the input price when unset."""

    input_per_mtok: float
    output_per_mtok: float
    cached_input_per_mtok: float | None = None
    cache_write_per_mtok: float | None = None
    tiers: tuple[PriceTier, ...] = ()  # ascending; long-context prices
    source: str = "config"

    def for_input(self, input_tokens: int) -> ModelPrices:
        """The flat rates that apply to a call with this many input tokens."""
        if not self.tiers:
            return self  # already flat (most models): no copy on the hot path
        rates = self
        for tier in self.tiers:
            if input_tokens > tier.above_input_tokens:
                rates = replace(self, **{f: getattr(tier, f) for f in PRICE_FIELDS})
        return replace(rates, tiers=())


def cost_usd(prices: ModelPrices, usage: Usage) -> float:
    """Uncached input at the input price, cache reads and writes at theirs, all output
    (reasoning included) at the output price. `usage.input_tokens` includes the cached part."""
    return tokens_cost_usd(
        prices,
        usage.input_tokens,
        usage.output_tokens,
        usage.cached_input_tokens,
        usage.cache_write_tokens,
    )


def tokens_cost_usd(
    prices: ModelPrices, input_tokens: int, output_tokens: int, cached: int = 0, written: int = 0
) -> float:
    """`cost_usd` from bare counts: routing prices every model for every job, and building
    a Usage for each estimate cost more than the arithmetic."""
    rates = prices.for_input(input_tokens)
    cached = min(cached, input_tokens)
    written = min(written, input_tokens - cached)
    uncached = input_tokens - cached - written
    cached_rate = rates.cached_input_per_mtok
    write_rate = rates.cache_write_per_mtok
    dollars_per_mtok = (
        uncached * rates.input_per_mtok
        + cached * (rates.input_per_mtok if cached_rate is None else cached_rate)
        + written * (rates.input_per_mtok if write_rate is None else write_rate)
        + output_tokens * rates.output_per_mtok
    )
    return dollars_per_mtok / PER_MTOK


def resolve_prices(
    model: ModelConfig,
    provider: ProviderConfig | str | None = None,
    *,
    at: datetime | None = None,
) -> ModelPrices:
    """The model's prices: config when it sets input and output prices, else the catalog
    (looked up by `catalog_id` or `model` under the provider's catalog id) with any config
    prices laid over it. `provider` is a ProviderConfig or a catalog id ("openai", "google").
    Raises ConfigError naming the model when nothing prices it and it is not `free`."""
    overrides = {f: getattr(model, f) for f in PRICE_FIELDS if getattr(model, f) is not None}
    if model.free:
        return ModelPrices(
            **{"input_per_mtok": 0.0, "output_per_mtok": 0.0, **overrides}, source="free"
        )
    if "input_per_mtok" in overrides and "output_per_mtok" in overrides:
        return ModelPrices(**overrides, source="config")
    ref = model.catalog_id or model.model
    self_hosted = isinstance(provider, ProviderConfig) and catalog_provider(provider) is None
    catalog = _catalog_id(provider)
    found = None if self_hosted else _catalog_prices(ref, catalog, at or datetime.now(UTC))
    if found is None:
        where = " (self-hosted endpoint)" if self_hosted else f" under {catalog}" if catalog else ""
        raise ConfigError(
            f"model {model.name!r}: no price for {ref!r} in the genai-prices catalog{where}; "
            "set input_per_mtok and output_per_mtok (or free = true) for it"
        )
    if not overrides:
        return found
    tiers = tuple(replace(t, **overrides) for t in found.tiers)
    return replace(found, **overrides, tiers=tiers, source=f"{found.source} + config")


def _catalog_id(provider: ProviderConfig | str | None) -> str | None:
    """The genai-prices provider id; None lets the catalog guess it from the model id."""
    if isinstance(provider, str):
        return _PROVIDER_ALIASES.get(provider.lower(), provider.lower())
    return catalog_provider(provider) if provider is not None else None


def _catalog_prices(ref: str, catalog: str | None, at: datetime) -> ModelPrices | None:
    try:
        provider, info = data_snapshot.get_snapshot().find_provider_model(ref, None, catalog, None)
    except LookupError:
        return None
    return _from_catalog(info.get_prices(at), f"genai-prices {provider.id}/{info.id}")


def _from_catalog(price: ModelPrice, source: str) -> ModelPrices | None:
    values = {field: getattr(price, key) for field, key in _CATALOG_KEYS.items()}
    if values["input_per_mtok"] is None or values["output_per_mtok"] is None:
        return None  # not a text model we can price per token
    starts = sorted(
        {t.start for v in values.values() if isinstance(v, TieredPrices) for t in v.tiers}
    )
    tiers = tuple(
        PriceTier(start, **{f: _rate(v, start) for f, v in values.items()})  # type: ignore[arg-type]
        for start in starts
    )
    base = {f: _rate(v, None) for f, v in values.items()}
    return ModelPrices(**base, tiers=tiers, source=source)  # type: ignore[arg-type]


def _rate(value: Decimal | TieredPrices | None, above: int | None) -> float | None:
    """The catalog price per MTok for calls whose input exceeds `above` (None = base tier)."""
    if value is None:
        return None
    if not isinstance(value, TieredPrices):
        return float(value)
    rate = value.base
    for tier in value.tiers:
        if above is not None and tier.start <= above:
            rate = tier.price
    return float(rate)
