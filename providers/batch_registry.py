"""Which batch API a provider has, if any, and whether it is on by default."""

from __future__ import annotations

from urllib.parse import urlparse

import httpx

from providers.base import ProviderAdapter
from providers.batch_anthropic import AnthropicBatchClient
from providers.batch_base import BatchClient
from providers.batch_gemini import GeminiBatchClient
from providers.batch_openai import OpenAIBatchClient
from schemas.config import ProviderConfig

BATCH_CLIENTS: dict[str, type[BatchClient]] = {
    "openai": OpenAIBatchClient,
    "anthropic": AnthropicBatchClient,
    "gemini": GeminiBatchClient,
}
PUBLIC_HOSTS = {
    "openai": "api.openai.com",
    "anthropic": "api.anthropic.com",
    "gemini": "generativelanguage.googleapis.com",
}


def batch_enabled(provider: ProviderConfig) -> bool:
    """`batch` when set; otherwise on for the three public APIs, off for other endpoints."""
    if provider.batch is not None:
        return provider.batch and provider.kind in BATCH_CLIENTS
    host = urlparse(provider.base_url).hostname or ""
    return PUBLIC_HOSTS.get(provider.kind) == host and provider.profile in (None, provider.kind)


def build_batch_client(
    adapter: ProviderAdapter, *, transport: httpx.AsyncBaseTransport | None = None
) -> BatchClient | None:
    if not batch_enabled(adapter.provider):
        return None
    return BATCH_CLIENTS[adapter.provider.kind](adapter, transport=transport)
