"""Simulated Anthropic prompt caching: a prefix marked with cache_control is written once,
then read for five minutes (each read refreshes it), if it is long enough for the model."""

from __future__ import annotations

import hashlib
import time

from providers.sim.wire import SimRequest, SimUsage

CACHE_TTL_S = 300.0


def min_cacheable_tokens(model: str) -> int:
    """Anthropic's smallest cacheable prompt per model family (shorter ones are not cached)."""
    if "haiku-4-5" in model or "opus-4-5" in model:
        return 4096
    if "haiku" in model:
        return 2048
    return 1024


class PromptCache:
    def __init__(self) -> None:
        self._expires: dict[str, float] = {}

    def bill(self, req: SimRequest, usage: SimUsage) -> None:
        """Move the prefix's tokens to cache writes (first use) or cache reads (later uses)."""
        tokens = req.cache_prefix_tokens
        if tokens < min_cacheable_tokens(req.model):
            return
        key = hashlib.sha256(f"{req.model}\n{req.cache_prefix}".encode()).hexdigest()
        now = time.monotonic()
        if self._expires.get(key, 0.0) > now:
            usage.cached_tokens = tokens
        else:
            usage.cache_write_tokens = tokens
        usage.cached_tokens = min(usage.cached_tokens, usage.input_tokens)
        self._expires[key] = now + CACHE_TTL_S
