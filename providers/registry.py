"""Which adapter speaks to a configured provider: chosen once, by `ProviderConfig.kind`."""

from __future__ import annotations

import httpx

from providers.anthropic import AnthropicAdapter
from providers.base import ProviderAdapter
from providers.gemini import GeminiAdapter
from providers.openai import OpenAIAdapter
from schemas.config import ProviderConfig
from schemas.errors import ConfigError

ADAPTERS: dict[str, type[ProviderAdapter]] = {
    "openai": OpenAIAdapter,
    "azure-openai": OpenAIAdapter,  # same protocol; the azure profile supplies URL and auth
    "anthropic": AnthropicAdapter,
    "gemini": GeminiAdapter,
}


def build_adapter(
    provider: ProviderConfig, *, transport: httpx.AsyncBaseTransport | None = None
) -> ProviderAdapter:
    """The adapter for one provider, over its own pooled client (`transport` for tests)."""
    try:
        adapter_class = ADAPTERS[provider.kind]
    except KeyError:
        raise ConfigError(
            f"provider {provider.name!r}: unknown kind {provider.kind!r} "
            f"(expected one of {', '.join(ADAPTERS)})"
        ) from None
    return adapter_class(provider, transport=transport)
