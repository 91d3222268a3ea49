"""`frugal call`: one request through one provider, no routing; how users check a provider."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema

from providers.pricing import cost_usd, resolve_prices
from providers.registry import build_adapter
from schemas.completion import Completion, CompletionRequest, Usage
from schemas.config import Config, ModelConfig, ProviderConfig
from schemas.errors import ConfigError, ProviderError

USAGE_FIELDS = (
    "input_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "output_tokens",
    "reasoning_tokens",
)
TEXT_OUTPUT_TOKENS = 1024  # a plain-text check needs no more; structured calls get the model's


def pick_provider(config: Config, name: str) -> ProviderConfig:
    """The configured provider, with its key present when the config names a key variable."""
    try:
        provider = config.provider(name)
    except KeyError:
        names = ", ".join(p.name for p in config.providers) or "none"
        raise ConfigError(f"unknown provider {name!r} (configured: {names})") from None
    if provider.api_key is None and provider.api_key_env:
        raise ConfigError(
            f"provider {name!r}: environment variable {provider.api_key_env} is not set"
        )
    return provider


def pick_model(config: Config, provider: str, model: str) -> ModelConfig:
    """A configured model by routing name or provider id, else an ad-hoc one on `provider`."""
    for m in config.models:
        if m.provider == provider and model in (m.name, m.model):
            return m
    return ModelConfig(name=model, provider=provider, model=model)


def read_schema(path: str | None) -> dict[str, Any] | None:
    """The output JSON Schema from `--json-schema`, checked before anything is sent."""
    if path is None:
        return None
    try:
        schema = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"--json-schema {path}: cannot read ({exc.strerror})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--json-schema {path}: not JSON ({exc})") from None
    if not isinstance(schema, dict):
        raise ConfigError(f"--json-schema {path}: must be a JSON object")
    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise ConfigError(
            f"--json-schema {path}: not a valid JSON Schema ({exc.message})"
        ) from None
    return schema


def price_call(
    model: ModelConfig, provider: ProviderConfig, usage: Usage, reported: float | None
) -> float | None:
    """The provider's own figure when it reports one, else priced from the usage; None when
    an ad-hoc model has no known price."""
    if reported is not None:
        return reported
    try:
        return cost_usd(resolve_prices(model, provider), usage)
    except ConfigError:
        return None


def usage_json(usage: Usage) -> dict[str, int]:
    return {f: getattr(usage, f) for f in USAGE_FIELDS}


def result_json(
    completion: Completion, model: ModelConfig, provider: ProviderConfig
) -> dict[str, Any]:
    usage = completion.usage
    return {
        "output": completion.output,
        "usage": usage_json(usage),
        "cost_usd": price_call(model, provider, usage, completion.provider_cost_usd),
    }


def error_json(
    error: ProviderError, model: ModelConfig, provider: ProviderConfig
) -> dict[str, Any]:
    """The classified error; an answered-but-unusable call (refusal, bad JSON) was billed,
    so its usage and cost come along."""
    result: dict[str, Any] = {"error": error.as_dict()}
    usage = error.usage
    if usage is not None:
        result["usage"] = usage_json(usage)
        result["cost_usd"] = price_call(model, provider, usage, None)
    return result


async def call_once(
    config: Config, provider_name: str, model_name: str, prompt: str, schema_path: str | None
) -> tuple[dict[str, Any], int]:
    """The spec's JSON object for one call, and the exit code (2 on a provider error)."""
    provider = pick_provider(config, provider_name)
    model = pick_model(config, provider_name, model_name)
    schema = read_schema(schema_path)
    adapter = build_adapter(provider)
    request = CompletionRequest(
        prompt=prompt,
        output_schema=schema,
        max_output_tokens=model.max_output_tokens if schema else TEXT_OUTPUT_TOKENS,
    )
    try:
        completion = await adapter.complete(model, request)
    except ProviderError as error:
        return error_json(error, model, provider), 2
    finally:
        await adapter.aclose()
    return result_json(completion, model, provider), 0
