"""Prompt caching as data: how long a shared prefix must be before a provider caches it."""

from __future__ import annotations

import json

from providers.tokens import estimate_tokens
from schemas.completion import CompletionRequest

# Anthropic caches a prefix marked with cache_control only from this many tokens on.
_ANTHROPIC_MIN_TOKENS = (("haiku-4-5", 4096), ("opus-4-5", 4096), ("haiku", 2048))
ANTHROPIC_DEFAULT_MIN_TOKENS = 1024


def anthropic_min_cacheable(model_id: str) -> int:
    return next(
        (n for key, n in _ANTHROPIC_MIN_TOKENS if key in model_id), ANTHROPIC_DEFAULT_MIN_TOKENS
    )


def shared_prefix_tokens(request: CompletionRequest) -> int:
    """Tokens of what a kind's jobs share, laid out first: output schema (tool) and instructions."""
    schema = json.dumps(request.output_schema) if request.output_schema else ""
    return estimate_tokens(request.system or "") + estimate_tokens(schema)


def worth_caching(model_id: str, request: CompletionRequest) -> bool:
    return bool(request.system) and shared_prefix_tokens(request) >= anthropic_min_cacheable(
        model_id
    )
