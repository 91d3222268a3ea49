"""What to do after each error type: retry the same model, move on, drop the provider, or park."""

from __future__ import annotations

import asyncio
import contextlib
import random
from dataclasses import dataclass
from enum import Enum

from schemas.config import RetryConfig
from schemas.errors import PROVIDER_ERRORS, ProviderError
from schemas.jobs import ParkedState


class Next(Enum):
    RETRY = "retry"  # same model, after `delay_s`
    NEXT_MODEL = "next_model"  # escalate to the next candidate
    NEXT_PROVIDER = "next_provider"  # skip every remaining model of this provider
    PARK = "park"  # the wait is long: hand the job to the retry topic


@dataclass(frozen=True)
class Decision:
    next: Next
    delay_s: float = 0.0


class RetryPolicy:
    """Transient errors retry with backoff (never sooner than the provider asked), then fall back."""

    def __init__(self, config: RetryConfig, rng: random.Random | None = None) -> None:
        self._config = config
        self._rng = rng or random.Random()

    def backoff_s(self, retries_done: int, asked_s: float | None) -> float:
        """Exponential backoff with jitter (half to full), never shorter than the provider asked."""
        cap = min(self._config.max_delay_s, self._config.base_delay_s * (2**retries_done))
        jittered = self._rng.uniform(cap / 2, cap) if cap > 0 else 0.0
        return max(jittered, asked_s or 0.0)

    def decide(self, error: ProviderError, retries_done: int) -> Decision:
        if error.provider_unusable:
            return Decision(Next.NEXT_PROVIDER)
        if not error.retryable:
            return Decision(Next.NEXT_MODEL)
        if retries_done >= self._config.max_retries:
            return Decision(Next.NEXT_PROVIDER)
        delay = self.backoff_s(retries_done, error.retry_after_s)
        if delay > self._config.park_after_s:
            return Decision(Next.PARK, delay)
        return Decision(Next.RETRY, delay)

    def park_for_unavailable(self, parks_done: int) -> Decision | None:
        """Waiting for a provider whose breaker is open: park, unless parked too often already."""
        if parks_done >= self._config.max_parks:
            return None
        return Decision(Next.PARK, self.backoff_s(parks_done, None))


async def sleep_unless(hurry: asyncio.Event, delay_s: float) -> bool:
    """Sleep `delay_s`; False (early) if `hurry` is set first, e.g. the worker is shutting down."""
    if hurry.is_set():
        return False
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(hurry.wait(), delay_s)
        return False
    return True


def carried_error(state: ParkedState | None) -> ProviderError | None:
    """The last error a parked job brought back, rebuilt as its taxonomy class."""
    if state is None or state.last_error_type is None:
        return None
    cls = PROVIDER_ERRORS.get(state.last_error_type, ProviderError)
    return cls(state.last_error)
