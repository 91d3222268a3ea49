"""Prices from the genai-prices catalog with config overrides, and the cost of a call's usage."""

from __future__ import annotations

from datetime import UTC, datetime

import genai_prices
import pytest

from providers.pricing import ModelPrices, PriceTier, cost_usd, resolve_prices
from schemas.completion import Usage
from schemas.config import ModelConfig, ProviderConfig
from schemas.errors import ConfigError

AT = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)


def model(model_id: str, **config: object) -> ModelConfig:
    return ModelConfig(name="routing-name", provider="p", model=model_id, **config)  # type: ignore[arg-type]


def provider(kind: str = "openai", base_url: str = "https://api.openai.com/v1") -> ProviderConfig:
    return ProviderConfig(name="p", kind=kind, base_url=base_url)  # type: ignore[arg-type]


def test_cost_prices_each_kind_of_token_at_its_own_rate() -> None:
    prices = ModelPrices(1.0, 4.0, cached_input_per_mtok=0.1, cache_write_per_mtok=1.25)
    usage = Usage(
        input_tokens=1000,
        cached_input_tokens=200,
        cache_write_tokens=100,
        output_tokens=50,
        reasoning_tokens=30,
    )
    # 700 uncached + 200 cached + 100 written; reasoning is already inside output
    assert cost_usd(prices, usage) == pytest.approx(
        (700 * 1 + 200 * 0.1 + 100 * 1.25 + 50 * 4) / 1e6
    )


def test_cached_and_written_tokens_fall_back_to_the_input_price() -> None:
    usage = Usage(input_tokens=1000, cached_input_tokens=200, cache_write_tokens=100)
    assert cost_usd(ModelPrices(2.0, 8.0), usage) == pytest.approx(1000 * 2 / 1e6)


def test_the_tier_is_chosen_by_the_call_input_tokens() -> None:
    prices = ModelPrices(1.0, 2.0, tiers=(PriceTier(200_000, 2.0, 3.0),))
    assert cost_usd(prices, Usage(input_tokens=200_000, output_tokens=1)) == pytest.approx(
        (200_000 * 1 + 2) / 1e6
    )
    assert cost_usd(prices, Usage(input_tokens=200_001, output_tokens=1)) == pytest.approx(
        (200_001 * 2 + 3) / 1e6
    )


def test_catalog_prices_by_provider_id() -> None:
    prices = resolve_prices(model("gpt-4o-mini"), "openai", at=AT)
    assert (prices.input_per_mtok, prices.output_per_mtok, prices.cached_input_per_mtok) == (
        0.15,
        0.6,
        0.075,
    )
    assert prices.cache_write_per_mtok is None and prices.tiers == ()
    assert prices.source == "genai-prices openai/gpt-4o-mini"


def test_catalog_prices_for_an_anthropic_provider_with_a_dated_model_id() -> None:
    prices = resolve_prices(
        model("claude-3-5-sonnet-20240620"), provider("anthropic", "https://x/v1"), at=AT
    )
    assert (prices.input_per_mtok, prices.output_per_mtok) == (3.0, 15.0)
    assert (prices.cached_input_per_mtok, prices.cache_write_per_mtok) == (0.3, 3.75)


def test_catalog_tiers_for_long_context_gemini() -> None:
    prices = resolve_prices(model("gemini-2.5-pro"), "gemini", at=AT)
    assert prices.for_input(100_000).input_per_mtok == 1.25
    long = prices.for_input(300_000)
    assert (long.input_per_mtok, long.output_per_mtok, long.cached_input_per_mtok) == (
        2.5,
        15.0,
        0.25,
    )


@pytest.mark.parametrize(
    ("model_id", "provider_id", "usage"),
    [
        (
            "gpt-4o-mini",
            "openai",
            Usage(input_tokens=1149, cached_input_tokens=1024, output_tokens=353),
        ),
        (
            "claude-sonnet-4-5",
            "anthropic",
            Usage(input_tokens=4749, cache_write_tokens=4602, output_tokens=38),
        ),
        (
            "claude-sonnet-4-5",
            "anthropic",
            Usage(
                input_tokens=300_000,
                cached_input_tokens=50_000,
                cache_write_tokens=1000,
                output_tokens=500,
            ),
        ),
        (
            "gemini-2.5-pro",
            "google",
            Usage(
                input_tokens=250_000,
                cached_input_tokens=10_000,
                output_tokens=2000,
                reasoning_tokens=1500,
            ),
        ),
    ],
)
def test_cost_agrees_with_the_catalog_own_calculation(
    model_id: str, provider_id: str, usage: Usage
) -> None:
    theirs = genai_prices.calc_price(
        genai_prices.Usage(
            input_tokens=usage.input_tokens,
            cache_read_tokens=usage.cached_input_tokens,
            cache_write_tokens=usage.cache_write_tokens,
            output_tokens=usage.output_tokens,
        ),
        model_id,
        provider_id=provider_id,
        genai_request_timestamp=AT,
    )
    ours = cost_usd(resolve_prices(model(model_id), provider_id, at=AT), usage)
    assert ours == pytest.approx(float(theirs.total_price), rel=1e-9)


def test_config_prices_override_the_catalog_everywhere() -> None:
    prices = resolve_prices(model("gemini-2.5-pro", input_per_mtok=0.5), "google", at=AT)
    assert prices.input_per_mtok == 0.5 and prices.for_input(300_000).input_per_mtok == 0.5
    assert prices.output_per_mtok == 10.0
    assert prices.source.endswith("+ config")


def test_config_input_and_output_prices_need_no_catalog() -> None:
    prices = resolve_prices(model("my-finetune", input_per_mtok=1, output_per_mtok=2))
    assert prices == ModelPrices(1.0, 2.0, source="config")


def test_free_models_cost_nothing() -> None:
    prices = resolve_prices(
        model("llama3", free=True), provider("openai", "http://localhost:11434")
    )
    assert cost_usd(prices, Usage(input_tokens=10**6, output_tokens=10**6)) == 0.0


def test_catalog_id_is_used_for_the_lookup() -> None:
    prices = resolve_prices(model("my-deployment", catalog_id="gpt-4o-mini"), "azure", at=AT)
    assert prices.input_per_mtok == 0.15


def test_unknown_model_is_a_config_error_naming_it() -> None:
    with pytest.raises(ConfigError) as info:
        resolve_prices(model("no-such-model-xyz"), "openai", at=AT)
    message = str(info.value)
    assert "'routing-name'" in message and "no-such-model-xyz" in message
    assert "input_per_mtok" in message and "\n" not in message


def test_self_hosted_endpoints_are_not_looked_up() -> None:
    vllm = ProviderConfig(name="p", base_url="http://gpu:8000/v1", profile="vllm")
    with pytest.raises(ConfigError, match="self-hosted"):
        resolve_prices(model("gpt-4o-mini"), vllm, at=AT)


def test_azure_deployments_are_priced_from_the_catalog() -> None:
    azure = provider("azure-openai", "https://acme.openai.azure.com")
    assert resolve_prices(model("gpt-4o-mini"), azure, at=AT).input_per_mtok == 0.15
