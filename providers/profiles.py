"""Endpoint quirks of OpenAI-compatible APIs, as data: one profile per endpoint family."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlsplit

from pydantic import BaseModel, ConfigDict

from schemas.config import ProviderConfig
from schemas.errors import ConfigError


class EndpointProfile(BaseModel):
    """How one OpenAI-compatible endpoint differs from api.openai.com.

    Paths are dotted (`prompt_tokens_details.cached_tokens`); the first one present wins.
    """

    model_config = ConfigDict(frozen=True)

    name: str
    hosts: tuple[str, ...] = ()  # base_url hosts (".suffix" matches subdomains) that imply it
    auth_header: str = "Authorization"
    auth_prefix: str = "Bearer "
    chat_path: str = "/chat/completions"  # may contain {model} (Azure deployments)
    api_version_param: str | None = None  # query parameter carrying ProviderConfig.api_version
    default_api_version: str | None = None
    model_in_body: bool = True
    max_tokens_field: str = "max_tokens"
    usage_paths: tuple[str, ...] = ("usage",)
    cached_tokens_paths: tuple[str, ...] = ("prompt_tokens_details.cached_tokens",)
    cache_write_paths: tuple[str, ...] = ("prompt_tokens_details.cache_write_tokens",)
    cost_usd_path: str | None = None  # the endpoint's own bill for the call, in USD
    upstream_error_path: str | None = None  # where a gateway puts the upstream's error text
    catalog_provider: str | None = None  # genai-prices provider id; None = self-hosted

    def chat_url(self, base_url: str, model_id: str, api_version: str | None) -> str:
        url = base_url.rstrip("/") + self.chat_path.format(model=quote(model_id, safe=""))
        version = api_version or self.default_api_version
        if self.api_version_param and version:
            url += f"?{self.api_version_param}={quote(version, safe='')}"
        return url


PROFILES: Mapping[str, EndpointProfile] = {
    p.name: p
    for p in (
        EndpointProfile(
            name="openai",
            hosts=("api.openai.com",),
            max_tokens_field="max_completion_tokens",
            catalog_provider="openai",
        ),
        EndpointProfile(
            name="azure",
            hosts=(".openai.azure.com", ".cognitiveservices.azure.com", ".services.ai.azure.com"),
            auth_header="api-key",
            auth_prefix="",
            chat_path="/openai/deployments/{model}/chat/completions",
            api_version_param="api-version",
            default_api_version="2024-10-21",
            model_in_body=False,
            max_tokens_field="max_completion_tokens",
            catalog_provider="azure",
        ),
        EndpointProfile(
            name="deepseek",
            hosts=("api.deepseek.com",),
            cached_tokens_paths=("prompt_cache_hit_tokens", "prompt_tokens_details.cached_tokens"),
            catalog_provider="deepseek",
        ),
        EndpointProfile(name="mistral", hosts=("api.mistral.ai",), catalog_provider="mistral"),
        EndpointProfile(
            name="groq",
            hosts=("api.groq.com",),
            usage_paths=("usage", "x_groq.usage"),
            catalog_provider="groq",
        ),
        EndpointProfile(
            name="openrouter",
            hosts=("openrouter.ai",),
            cost_usd_path="usage.cost",
            upstream_error_path="error.metadata.raw",
            catalog_provider="openrouter",
        ),
        EndpointProfile(
            name="together",
            hosts=("api.together.xyz", "api.together.ai"),
            cached_tokens_paths=("cached_tokens", "prompt_tokens_details.cached_tokens"),
            catalog_provider="together",
        ),
        EndpointProfile(name="vllm"),
        EndpointProfile(name="ollama"),
    )
}

OLLAMA_PORT = 11434
# kind -> price-catalog provider for the protocols that are not OpenAI-compatible
_NATIVE_CATALOG = {"anthropic": "anthropic", "gemini": "google"}


def infer_profile_name(base_url: str) -> str:
    """The profile a base_url implies; "openai" when the host is not a known endpoint."""
    parts = urlsplit(base_url)
    host = (parts.hostname or "").lower()
    for profile in PROFILES.values():
        for pattern in profile.hosts:
            if host == pattern.lstrip(".") or (pattern.startswith(".") and host.endswith(pattern)):
                return profile.name
    if parts.port == OLLAMA_PORT:
        return "ollama"
    return "openai"


def profile_for(provider: ProviderConfig) -> EndpointProfile:
    """The provider's explicit profile, else azure for kind azure-openai, else by host."""
    if provider.profile is not None:
        name = provider.profile.lower()
    elif provider.kind == "azure-openai":
        name = "azure"
    else:
        name = infer_profile_name(provider.base_url)
    try:
        return PROFILES[name]
    except KeyError:
        known = ", ".join(sorted(PROFILES))
        raise ConfigError(
            f"provider {provider.name!r}: unknown profile {provider.profile!r} (known: {known})"
        ) from None


def catalog_provider(provider: ProviderConfig) -> str | None:
    """The genai-prices provider id to price this provider's models with, if any."""
    if provider.kind in _NATIVE_CATALOG:
        return _NATIVE_CATALOG[provider.kind]
    return profile_for(provider).catalog_provider


def dig(data: Any, path: str) -> Any:
    """`data["a"]["b"]` for path "a.b"; None when any step is missing."""
    for key in path.split("."):
        if not isinstance(data, Mapping):
            return None
        data = data.get(key)
    return data


def first_present(data: Any, paths: tuple[str, ...]) -> Any:
    for path in paths:
        value = dig(data, path)
        if value is not None:
            return value
    return None
