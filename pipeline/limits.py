"""Per-provider backpressure: requests/min, tokens/min, concurrency, 429 slow-down, breaker.

The breaker itself (outage vs one job's persistent failure) lives in pipeline.breaker.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from pipeline.breaker import (
    BREAKER_COOLDOWN_S,
    BREAKER_FAILURES,
    CircuitBreaker,
    CircuitOpen,
)
from schemas.completion import Completion
from schemas.config import ProviderConfig
from schemas.errors import ProviderError

__all__ = [
    "BREAKER_COOLDOWN_S",
    "BREAKER_FAILURES",
    "CircuitBreaker",
    "CircuitOpen",
    "Limits",
    "Permit",
    "ProviderLimiter",
    "TokenBucket",
]

Clock = Callable[[], float]

BURST_S = 1.0  # a bucket holds at most about one second of quota
# Run a little under the configured rate: network jitter bunches our requests up on the way, and
# a provider whose own bucket is as small as ours answers such a bunch with a 429.
RATE_MARGIN = 0.95
DECREASE = 0.7  # multiplicative decrease on a 429 (once per round trip)
MIN_SHARE = 0.02  # the slow-down never goes below this share of the configured rate
FAST_RECOVERY = 0.25  # share of the last good ceiling regained per second, up to 90% of it
PROBE_GROWTH = 0.02  # above that, grow 2% per second: finds a raised limit, rarely trips
START_SHARE = 0.3  # slow start: a new worker ramps up to the configured rate over ~2.5 s
RATE_WINDOW_S = 10.0  # the window behind the "calls per second" of the status line


@dataclass
class TokenBucket:
    """A smoothed rate: `rate` units per second with a burst of about BURST_S of quota."""

    rate: float
    clock: Clock = time.monotonic
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

    def charge(self, amount: float) -> None:
        """Take (or with a negative amount, return) units after the fact; may go into debt."""
        self._refill()
        self.level = min(self.capacity, self.level - amount)


class AdaptiveRate:
    """AIMD on the share of the configured rate a provider really takes.

    A 429 on a call sent after the last decrease cuts the share by DECREASE and remembers
    the share that tripped as the ceiling (429s of calls already in flight say nothing new).
    Recovery is quick up to 90% of the ceiling, then a slow probe, so a lower real limit is
    found once and then held with rare, small overshoots.
    """

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self._clock = clock
        self.share = START_SHARE
        self.ceiling = 1.0
        self.last_decrease = float("-inf")
        self._stamp = clock()

    def current(self, growing: bool = True) -> float:
        """The share now; it only grows while `growing` (calls are queuing for it): an idle
        provider proves nothing about a higher rate, so idling does not ramp it up."""
        now = self._clock()
        dt, self._stamp = max(0.0, now - self._stamp), max(now, self._stamp)
        if not growing:
            return self.share
        knee = 0.9 * self.ceiling
        if self.share < knee:
            self.share = min(knee, self.share + FAST_RECOVERY * self.ceiling * dt)
        else:
            self.share *= 1 + PROBE_GROWTH * dt
        self.share = min(1.0, self.share)
        self.ceiling = max(self.ceiling, self.share)
        return self.share

    def on_rate_limited(self, sent_at: float, quiet_until: float = 0.0) -> bool:
        """A 429 for a call sent at `sent_at`; True when it slowed the provider down.

        No recovery before `quiet_until` (the end of the wait the provider asked for): time
        spent not sending proves nothing about the rate.
        """
        if sent_at < self.last_decrease:
            self._stamp = max(self._stamp, quiet_until)
            return False
        share = self.current()
        self.ceiling = share
        self.share = max(MIN_SHARE, share * DECREASE)
        self.last_decrease = self._clock()
        self._stamp = max(self._stamp, quiet_until)
        return True


@dataclass
class Permit:
    """One admitted call: when it was sent and what it was charged against the token bucket."""

    sent_at: float
    charged_tokens: int
    job: str | None = None  # the job it was sent for: the breaker counts distinct jobs
    # False for a job that already failed on another provider: it fails everywhere, which says
    # nothing about this provider, so its failures must not open the breaker for other jobs.
    blame: bool = True


class ProviderLimiter:
    """One provider's limits: everything a call must pass before it is sent."""

    def __init__(self, config: ProviderConfig, clock: Clock = time.monotonic) -> None:
        self.config = config
        self._clock = clock
        self._concurrency = asyncio.Semaphore(config.max_concurrency)
        self.adaptive = AdaptiveRate(clock)
        self.breaker = CircuitBreaker(clock)
        self.rpm: float | None = config.rpm  # configured, or learned from the first 429
        self.group_share = 1.0  # of rpm and tpm: this worker's part of the group (limit_share)
        self._requests = TokenBucket(self._rpm_rate(START_SHARE), clock) if config.rpm else None
        self._tokens = TokenBucket(config.tpm / 60.0 * START_SHARE, clock) if config.tpm else None
        self._blocked_until = 0.0
        self._sent: deque[float] = deque()
        self.disabled_reason: str | None = None
        self.in_flight = 0
        self.waiting = 0
        self.calls = 0
        self.rate_limited = 0
        self.failed = 0

    def _rpm_rate(self, share: float) -> float:
        return (self.rpm or 0) / 60.0 * RATE_MARGIN * share * self.group_share

    def set_group_share(self, share: float) -> None:
        """This worker's part of the provider's limits, which the whole group shares."""
        if self._requests is not None and self.rpm and self.group_share > 0:
            self._requests.rate *= share / self.group_share  # takes effect now, not at next call
        self.group_share = max(1e-3, min(1.0, share))

    def _learn_rpm(self) -> None:
        """A 429 from a provider without a configured `rpm`: the rate we were sending at is
        the starting point; the slow-down takes it from there."""
        now = self._clock()
        self.rate_per_s()  # drops calls older than the window
        span = max(1.0, now - self._sent[0]) if self._sent else 1.0
        self.rpm = max(1.0, len(self._sent) / span) * 60 / RATE_MARGIN / self.group_share
        self.adaptive.share = self.adaptive.ceiling = 1.0
        self._requests = TokenBucket(self._rpm_rate(1.0), self._clock)

    def available(self) -> bool:
        return self.disabled_reason is None and self.breaker.allows()

    def saturated(self) -> bool:
        return self.waiting > 0

    def _apply_share(self) -> None:
        share = self.adaptive.current(growing=self.waiting > 0)
        if self._requests is not None:
            self._requests.rate = self._rpm_rate(share)
        if self._tokens is not None and self.config.tpm:
            self._tokens.rate = self.config.tpm / 60.0 * share * self.group_share

    async def _pass_rate_limits(self, est_tokens: int) -> None:
        while True:
            self._apply_share()
            pause = self._blocked_until - self._clock()
            if pause > 0:
                await asyncio.sleep(pause)
                self._restart_pacing()
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
    async def slot(
        self, est_tokens: int, job: str | None = None, blame: bool = True
    ) -> AsyncIterator[Permit]:
        """Wait for concurrency, rate and token quota (CircuitOpen if the breaker is open).

        A ProviderError raised inside the block is observed here; call `observe_success`
        with the completion inside the block.
        """
        await self._admit(est_tokens)
        self.in_flight += 1
        self.calls += 1
        permit = Permit(self._clock(), est_tokens, job, blame)
        self._sent.append(permit.sent_at)
        try:
            yield permit
        except ProviderError as error:
            self.observe_error(permit, error)
            raise
        finally:
            self.in_flight -= 1
            self._concurrency.release()
            self.breaker.release_probe()

    async def _admit(self, est_tokens: int) -> None:
        self.waiting += 1
        try:
            await self._concurrency.acquire()
            try:
                await self._pass_rate_limits(est_tokens)
                if self.disabled_reason is not None or not self.breaker.admit():
                    raise CircuitOpen(
                        f"{self.config.name}: circuit open", provider=self.config.name
                    )
            except BaseException:
                self._concurrency.release()
                raise
        finally:
            self.waiting -= 1

    def _restart_pacing(self) -> None:
        """After a 429 or the wait it asked for: pace from an empty bucket, no saved-up burst."""
        now = self._clock()
        for bucket in (self._requests, self._tokens):
            if bucket is not None:
                bucket.level, bucket.stamp = min(bucket.level, 0.0), now

    def unused(self, permit: Permit) -> None:
        """The admitted call was not sent after all (a cap refused it): return its quota."""
        self.calls -= 1
        if self._sent and self._sent[-1] == permit.sent_at:
            self._sent.pop()
        if self._requests is not None:
            self._requests.give_back(1)
        if self._tokens is not None:
            self._tokens.give_back(permit.charged_tokens)

    def observe_success(self, permit: Permit, completion: Completion) -> None:
        self.breaker.success(permit.job)
        if self._tokens is not None:
            used = completion.usage.input_tokens + completion.usage.output_tokens
            self._tokens.charge(used - permit.charged_tokens)  # the estimate, corrected

    def observe_error(self, permit: Permit, error: ProviderError) -> None:
        now = self._clock()
        if error.type == "rate_limited":
            self.rate_limited += 1
            self._blocked_until = max(self._blocked_until, now + (error.retry_after_s or 1.0))
            if self._requests is None:
                self._learn_rpm()
            if self.adaptive.on_rate_limited(permit.sent_at, self._blocked_until):
                self._restart_pacing()
            return
        if error.provider_unusable:
            self.disabled_reason = error.type
            return
        if error.retryable:
            self.failed += 1
            if permit.blame:
                self.breaker.failure(permit.job)
        else:  # the provider answered: a bad request is not an outage
            self.breaker.success(permit.job)

    def rate_per_s(self) -> float:
        """Calls sent per second over the last RATE_WINDOW_S."""
        now = self._clock()
        while self._sent and self._sent[0] < now - RATE_WINDOW_S:
            self._sent.popleft()
        return len(self._sent) / RATE_WINDOW_S

    def state(self) -> str:
        if self.disabled_reason:
            return "down:" + self.disabled_reason
        return "ok" if self.breaker.state == "closed" else "breaker-" + self.breaker.state

    def status(self) -> str:
        limit = ""
        if self._requests is not None:
            self._apply_share()
            limit = f" limit={self._requests.rate * 60:.0f}rpm({self.adaptive.share:.0%})"
        share_429 = self.rate_limited / self.calls if self.calls else 0.0
        return (
            f"{self.config.name}: {self.state()} in_flight={self.in_flight} "
            f"waiting={self.waiting} rate={self.rate_per_s() * 60:.0f}rpm{limit} "
            f"calls={self.calls} 429s={self.rate_limited}({share_429:.1%}) errors={self.failed}"
        )


class Limits:
    def __init__(self, providers: list[ProviderConfig], clock: Clock = time.monotonic) -> None:
        self.providers = {p.name: ProviderLimiter(p, clock) for p in providers}

    def available(self, name: str) -> bool:
        return name in self.providers and self.providers[name].available()

    def set_group_share(self, share: float) -> None:
        """Pace every provider at `share` of its limits (pipeline.limit_share)."""
        for limiter in self.providers.values():
            limiter.set_group_share(share)

    def saturated(self) -> list[str]:
        """Providers with calls queued behind their limits."""
        return [name for name, limiter in self.providers.items() if limiter.saturated()]

    def __getitem__(self, name: str) -> ProviderLimiter:
        return self.providers[name]
