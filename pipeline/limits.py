"""Per-provider backpressure: requests/min, tokens/min, concurrency, 429 slow-down, breaker."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from schemas.completion import Completion
from schemas.config import ProviderConfig
from schemas.errors import ProviderError

BURST_S = 1.0  # a bucket holds at most about one second of quota
MIN_RATE_SHARE = 0.05  # adaptive slow-down never goes below this share of the configured rate
RECOVERY_PER_S = 0.02  # share of the configured rate regained per second without 429s
BREAKER_FAILURES = 5  # consecutive failures that open the breaker
BREAKER_COOLDOWN_S = 10.0


@dataclass
class TokenBucket:
    """A smoothed rate: `rate` units per second with a burst of about BURST_S of quota."""

    rate: float
    clock: Callable[[], float] = time.monotonic
    level: float = field(init=False)
    stamp: float = field(init=False)

    def __post_init__(self) -> None:
        self.level = self.capacity
        self.stamp = self.clock()

    @property
    def capacity(self) -> float:
        return max(1.0, self.rate * BURST_S)

    def _refill(self) -> None:
        now = self.clock()
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        self.stamp = now

    def wait_s(self, amount: float) -> float:
        """Seconds until `amount` can be taken (taking it once that is 0)."""
        self._refill()
        amount = min(amount, self.capacity)  # a request larger than the burst still goes
        if self.level >= amount:
            self.level -= amount
            return 0.0
        return (amount - self.level) / self.rate

    def give_back(self, amount: float) -> None:
        self.level = min(self.capacity, self.level + amount)


class ProviderLimiter:
    """One provider's limits: everything a call must pass before it is sent."""

    def __init__(self, config: ProviderConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self._clock = clock
        self._concurrency = asyncio.Semaphore(config.max_concurrency)
        self._share = 1.0  # adaptive share of the configured rates
        self._requests = TokenBucket(config.rpm / 60.0, clock) if config.rpm else None
        self._tokens = TokenBucket(config.tpm / 60.0, clock) if config.tpm else None
        self._blocked_until = 0.0
        self._last_adjust = clock()
        self._failures = 0
        self._open_until = 0.0
        self.disabled_reason: str | None = None
        self.in_flight = 0
        self.waiting = 0
        self.calls = 0
        self.rate_limited = 0

    def available(self) -> bool:
        return self.disabled_reason is None and self._clock() >= self._open_until

    def saturated(self) -> bool:
        return self.waiting > 0 and self.in_flight >= self.config.max_concurrency

    def _recover(self) -> None:
        now = self._clock()
        self._share = min(1.0, self._share + (now - self._last_adjust) * RECOVERY_PER_S)
        self._last_adjust = now
        for bucket, configured in (
            (self._requests, self.config.rpm),
            (self._tokens, self.config.tpm),
        ):
            if bucket is not None and configured:
                bucket.rate = configured / 60.0 * self._share

    async def _pass_rate_limits(self, est_tokens: int) -> None:
        while True:
            self._recover()
            pause = self._blocked_until - self._clock()
            if pause > 0:
                await asyncio.sleep(pause)
                continue
            wait = self._requests.wait_s(1) if self._requests else 0.0
            if wait > 0:
                await asyncio.sleep(wait)
                continue
            wait = self._tokens.wait_s(est_tokens) if self._tokens else 0.0
            if wait > 0:
                if self._requests:
                    self._requests.give_back(1)
                await asyncio.sleep(wait)
                continue
            return

    @asynccontextmanager
    async def slot(self, est_tokens: int) -> AsyncIterator[None]:
        self.waiting += 1
        try:
            await self._concurrency.acquire()
            try:
                await self._pass_rate_limits(est_tokens)
            except BaseException:
                self._concurrency.release()
                raise
        finally:
            self.waiting -= 1
        self.in_flight += 1
        self.calls += 1
        try:
            yield
        finally:
            self.in_flight -= 1
            self._concurrency.release()

    def observe_success(self, completion: Completion, est_tokens: int) -> None:
        self._failures = 0
        if self._tokens is not None:
            used = completion.usage.input_tokens + completion.usage.output_tokens
            self._tokens.level -= used - est_tokens  # correct the estimate by the real count

    def observe_error(self, error: ProviderError) -> None:
        now = self._clock()
        if error.type == "rate_limited":
            self.rate_limited += 1
            self._share = max(MIN_RATE_SHARE, self._share * 0.7)
            self._last_adjust = now
            self._blocked_until = max(self._blocked_until, now + (error.retry_after_s or 1.0))
            return
        if error.provider_unusable:
            self.disabled_reason = error.type
            return
        if error.retryable:
            self._failures += 1
            if self._failures >= BREAKER_FAILURES:
                self._open_until = now + BREAKER_COOLDOWN_S
                self._failures = BREAKER_FAILURES - 1  # one more failure after the probe re-opens

    def status(self) -> str:
        state = (
            "down:" + self.disabled_reason
            if self.disabled_reason
            else ("open" if not self.available() else "ok")
        )
        return (
            f"{self.config.name}: {state} in_flight={self.in_flight} waiting={self.waiting} "
            f"calls={self.calls} 429s={self.rate_limited} rate_share={self._share:.2f}"
        )


class Limits:
    def __init__(self, providers: list[ProviderConfig]) -> None:
        self.providers = {p.name: ProviderLimiter(p) for p in providers}

    def available(self, name: str) -> bool:
        return name in self.providers and self.providers[name].available()

    def __getitem__(self, name: str) -> ProviderLimiter:
        return self.providers[name]
