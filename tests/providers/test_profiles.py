"""Endpoint profiles are data chosen by config or base_url; adapters are chosen by kind."""

from __future__ import annotations

import pytest

from providers.anthropic import AnthropicAdapter
from providers.gemini import GeminiAdapter
from providers.openai import OpenAIAdapter
from providers.profiles import PROFILES, catalog_provider, infer_profile_name, profile_for
from providers.registry import build_adapter
from schemas.config import ProviderConfig
from schemas.errors import ConfigError


def provider(base_url: str, kind: str = "openai", profile: str | None = None) -> ProviderConfig:
    return ProviderConfig(name="p", kind=kind, base_url=base_url, profile=profile)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("base_url", "profile"),
    [
        ("https://api.openai.com/v1", "openai"),
        ("https://acme.openai.azure.com", "azure"),
        ("https://api.deepseek.com", "deepseek"),
        ("https://api.mistral.ai/v1", "mistral"),
        ("https://api.groq.com/openai/v1", "groq"),
        ("https://openrouter.ai/api/v1", "openrouter"),
        ("https://api.together.xyz/v1", "together"),
        ("http://localhost:11434/v1", "ollama"),
        ("http://gpu-box:8000/v1", "openai"),
        ("https://evil-openrouter.ai.example.com/v1", "openai"),
    ],
)
def test_profile_is_inferred_from_the_host(base_url: str, profile: str) -> None:
    assert infer_profile_name(base_url) == profile


def test_explicit_profile_wins_over_the_host() -> None:
    assert profile_for(provider("http://gpu-box:8000/v1", profile="vllm")).name == "vllm"
    assert profile_for(provider("https://api.openai.com/v1", profile="Groq")).name == "groq"


def test_azure_kind_defaults_to_the_azure_profile() -> None:
    assert profile_for(provider("https://gw.example.com", kind="azure-openai")).name == "azure"


def test_unknown_profile_is_a_config_error_listing_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"unknown profile 'nope'.*deepseek"):
        profile_for(provider("https://x", profile="nope"))


def test_azure_profile_builds_deployment_urls() -> None:
    url = PROFILES["azure"].chat_url("https://acme.openai.azure.com/", "my deploy", "2025-01-01")
    assert url == (
        "https://acme.openai.azure.com/openai/deployments/my%20deploy/chat/completions"
        "?api-version=2025-01-01"
    )


@pytest.mark.parametrize(
    ("config", "catalog"),
    [
        (provider("https://api.anthropic.com/v1", kind="anthropic"), "anthropic"),
        (provider("https://generativelanguage.googleapis.com/v1beta", kind="gemini"), "google"),
        (provider("https://api.groq.com/openai/v1"), "groq"),
        (provider("http://localhost:11434/v1"), None),
    ],
)
def test_catalog_provider(config: ProviderConfig, catalog: str | None) -> None:
    assert catalog_provider(config) == catalog


@pytest.mark.parametrize(
    ("kind", "adapter"),
    [
        ("openai", OpenAIAdapter),
        ("azure-openai", OpenAIAdapter),
        ("anthropic", AnthropicAdapter),
        ("gemini", GeminiAdapter),
    ],
)
async def test_build_adapter_by_kind(kind: str, adapter: type) -> None:
    built = build_adapter(provider("https://example.com", kind=kind))
    try:
        assert type(built) is adapter and built.name == "p"
    finally:
        await built.aclose()
