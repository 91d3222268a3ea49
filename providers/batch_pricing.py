"""Batch prices: genai-prices' own batch variant where the catalog has one for the model,
else the list price times the provider's `batch_discount` (every token class)."""

from __future__ import annotations

from dataclasses import fields, replace
from datetime import UTC, datetime

from genai_prices import data_snapshot

from providers.pricing import ModelPrices, _catalog_id, _from_catalog, resolve_prices
from schemas.config import ModelConfig, ProviderConfig

BATCH_CONTEXT = {"processing": "batch"}


def discounted(prices: ModelPrices, discount: float) -> ModelPrices:
    rates = {
        f.name: getattr(prices, f.name) * discount
        for f in fields(prices)
        if f.name.endswith("_per_mtok") and getattr(prices, f.name) is not None
    }
    tiers = tuple(
        replace(t, **{k: v * discount for k, v in vars(t).items() if _is_rate(k, v)})
        for t in prices.tiers
    )
    return replace(prices, **rates, tiers=tiers, source=f"{prices.source} x{discount:g} batch")


def _is_rate(name: str, value: object) -> bool:
    return name.endswith("_per_mtok") and value is not None


def catalog_batch_prices(model: ModelConfig, provider: ProviderConfig) -> ModelPrices | None:
    """The catalog's batch variant, or None when it has none for this model."""
    ref = model.catalog_id or model.model
    try:
        found, info = data_snapshot.get_snapshot().find_provider_model(
            ref, None, _catalog_id(provider), None
        )
    except LookupError:
        return None
    now = datetime.now(UTC)
    standard, batch = info.get_prices(now), info.get_prices(now, BATCH_CONTEXT)
    if batch == standard:
        return None
    return _from_catalog(batch, f"genai-prices {found.id}/{info.id} batch")


def resolve_batch_prices(model: ModelConfig, provider: ProviderConfig) -> ModelPrices:
    """Config prices (when set) or a catalog without a batch variant: x batch_discount."""
    listed = resolve_prices(model, provider)
    if listed.source.startswith("genai-prices") and "+ config" not in listed.source:
        from_catalog = catalog_batch_prices(model, provider)
        if from_catalog is not None:
            return from_catalog
    return discounted(listed, provider.batch_discount)
