"""`frugal call`: one request through one provider, no routing; how users check a provider."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from providers.pricing import cost_usd, resolve_prices
from providers.registry import build_adapter
from schemas.completion import CompletionRequest
from schemas.config import Config, ModelConfig
from schemas.errors import ConfigError, ProviderError


def pick_model(config: Config, provider: str, model: str) -> ModelConfig:
    """A configured model by routing name or provider id, else an ad-hoc one on `provider`."""
    try:
        config.provider(provider)
    except KeyError:
        names = ", ".join(p.name for p in config.providers) or "none"
        raise ConfigError(f"unknown provider {provider!r} (configured: {names})") from None
    for m in config.models:
        if m.provider == provider and model in (m.name, m.model):
            return m
    return ModelConfig(name=model, provider=provider, model=model)


def read_schema(path: str | None) -> dict[str, Any] | None:
    if path is None:
        return None
    try:
        schema = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"--json-schema {path}: cannot read ({exc.strerror})") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"--json-schema {path}: not JSON ({exc})") from None
    if not isinstance(schema, dict):
        raise ConfigError(f"--json-schema {path}: must be a JSON object")
    return schema


async def call_once(
    config: Config, provider: str, model: str, prompt: str, schema_path: str | None
) -> tuple[dict[str, Any], int]:
    """The spec's JSON object for one call, and the exit code (2 on a provider error)."""
    model_config = pick_model(config, provider, model)
    schema = read_schema(schema_path)
    adapter = build_adapter(config.provider(provider))
    request = CompletionRequest(
        prompt=prompt,
        output_schema=schema,
        max_output_tokens=model_config.max_output_tokens if schema else 1024,
    )
    try:
        completion = await adapter.complete(model_config, request)
    except ProviderError as error:
        return {"error": error.as_dict()}, 2
    finally:
        await adapter.aclose()
    usage = completion.usage
    try:
        cost: float | None = cost_usd(resolve_prices(model_config, config.provider(provider)), usage)
    except ConfigError:
        cost = None  # an ad-hoc model with no catalog price
    if completion.provider_cost_usd is not None:
        cost = completion.provider_cost_usd
    fields = (
        "input_tokens",
        "cached_input_tokens",
        "cache_write_tokens",
        "output_tokens",
        "reasoning_tokens",
    )
    return {
        "output": completion.output,
        "usage": {f: getattr(usage, f) for f in fields},
        "cost_usd": cost,
    }, 0
