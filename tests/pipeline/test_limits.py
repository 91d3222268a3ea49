"""Per-provider limits with an injected clock: token buckets, AIMD slow-down, circuit breaker."""

from __future__ import annotations

import asyncio

import pytest

from pipeline.limits import (
    BREAKER_COOLDOWN_S,
    BREAKER_FAILURES,
    DECREASE,
    MIN_SHARE,
    RATE_MARGIN,
    AdaptiveRate,
    CircuitBreaker,
    CircuitOpen,
    ProviderLimiter,
    TokenBucket,
)
from schemas.completion import Completion, Usage
from schemas.config import ProviderConfig
from schemas.errors import RateLimited, ServerError


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def test_a_bucket_bursts_at_most_one_second_of_quota_then_paces() -> None:
    clock = Clock()
    bucket = TokenBucket(10.0, clock)
    taken = sum(1 for _ in range(50) if bucket.wait_s(1) == 0)
    assert taken == 10
    assert bucket.wait_s(1) == pytest.approx(0.1)
    clock.advance(0.5)
    assert sum(1 for _ in range(50) if bucket.wait_s(1) == 0) == 5


def test_token_estimates_are_corrected_by_the_reported_usage() -> None:
    clock = Clock()
    bucket = TokenBucket(1000.0, clock)
    assert bucket.wait_s(600) == 0
    bucket.charge(-500)  # the call used 500 tokens fewer than estimated: they come back
    assert bucket.level == pytest.approx(900)
    bucket.charge(1500)  # or more: the bucket goes into debt and the next call waits
    assert bucket.wait_s(100) == pytest.approx(0.7)


def test_a_429_slows_down_once_per_round_trip_not_once_per_call_in_flight() -> None:
    clock = Clock()
    rate = AdaptiveRate(clock)
    rate.share = rate.ceiling = 1.0
    sent_before = clock.now
    clock.advance(0.05)
    assert rate.on_rate_limited(sent_before)
    assert rate.share == pytest.approx(DECREASE)
    for _ in range(20):  # the rest of the burst that was already on its way
        assert not rate.on_rate_limited(sent_before)
    assert rate.share == pytest.approx(DECREASE)
    clock.advance(0.01)
    assert rate.on_rate_limited(clock.now)  # a call sent after the slow-down: slow down again
    assert rate.share == pytest.approx(DECREASE * DECREASE, rel=0.02)


def test_the_slow_down_recovers_fast_to_near_the_limit_then_probes_slowly() -> None:
    clock = Clock()
    rate = AdaptiveRate(clock)
    rate.share = rate.ceiling = 0.2  # a provider whose real limit is a fifth of the configured
    rate.on_rate_limited(clock.now)
    assert rate.current() == pytest.approx(0.2 * DECREASE)
    clock.advance(1.0)
    assert rate.current() == pytest.approx(0.18)  # back at 90% of the rate that tripped
    clock.advance(5.0)
    assert 0.18 < rate.current() < 0.2  # then a slow probe for a raised limit
    clock.advance(60.0)
    assert rate.current() > 0.3  # a limit that went up is found again, gradually


def test_the_slow_down_has_a_floor() -> None:
    clock = Clock()
    rate = AdaptiveRate(clock)
    for _ in range(100):
        clock.advance(0.001)
        rate.on_rate_limited(clock.now)
    assert rate.share == pytest.approx(MIN_SHARE)


def test_the_breaker_opens_after_consecutive_failures_and_probes_with_one_call() -> None:
    clock = Clock()
    breaker = CircuitBreaker(clock)
    for _ in range(BREAKER_FAILURES):
        assert breaker.allows()
        breaker.failure()
    assert breaker.state == "open" and not breaker.allows()
    clock.advance(BREAKER_COOLDOWN_S)
    assert breaker.state == "half-open"
    assert breaker.admit()  # the probe
    assert not breaker.allows() and not breaker.admit()  # one probe only
    breaker.failure()  # probe failed: open again, for twice as long
    assert breaker.state == "open"
    clock.advance(BREAKER_COOLDOWN_S)
    assert breaker.state == "open"
    clock.advance(BREAKER_COOLDOWN_S)
    assert breaker.admit()
    breaker.success()
    assert breaker.state == "closed" and breaker.allows()


def provider(**fields: object) -> ProviderConfig:
    return ProviderConfig.model_validate(
        {"name": "p", "base_url": "http://127.0.0.1:1/v1", **fields}
    )


async def test_the_limiter_paces_calls_to_the_configured_rate() -> None:
    limiter = ProviderLimiter(provider(rpm=1200, max_concurrency=8))
    limiter.adaptive.share = 1.0  # skip the slow start
    loop = asyncio.get_running_loop()
    started = loop.time()
    for _ in range(30):
        async with limiter.slot(10):
            pass
    rate = 30 / (loop.time() - started)
    expected = 1200 / 60 * RATE_MARGIN
    assert rate < expected * 1.6  # one second of burst, then the configured pace
    assert limiter.calls == 30


async def test_the_limiter_bounds_concurrency() -> None:
    limiter = ProviderLimiter(provider(max_concurrency=3))
    peak = 0

    async def call() -> None:
        nonlocal peak
        async with limiter.slot(1):
            peak = max(peak, limiter.in_flight)
            await asyncio.sleep(0.01)

    await asyncio.gather(*(call() for _ in range(12)))
    assert peak == 3 and limiter.in_flight == 0


async def test_errors_raised_in_a_slot_feed_the_slow_down_and_the_breaker() -> None:
    limiter = ProviderLimiter(provider(rpm=60_000))
    with pytest.raises(RateLimited):
        async with limiter.slot(1):
            raise RateLimited("429", retry_after_s=0.01)
    assert limiter.rate_limited == 1 and limiter.adaptive.share < 1.0
    for _ in range(BREAKER_FAILURES):
        with pytest.raises(ServerError):
            async with limiter.slot(1):
                raise ServerError("500")
    assert not limiter.available()
    with pytest.raises(CircuitOpen):
        async with limiter.slot(1):
            pass


async def test_a_success_corrects_the_token_estimate() -> None:
    limiter = ProviderLimiter(provider(tpm=60_000))
    async with limiter.slot(500) as permit:
        completion = Completion(usage=Usage(input_tokens=40, output_tokens=10))
        limiter.observe_success(permit, completion)
    assert limiter._tokens is not None
    assert limiter._tokens.level == pytest.approx(limiter._tokens.capacity, abs=5)


def test_an_idle_provider_does_not_ramp_up() -> None:
    clock = Clock()
    rate = AdaptiveRate(clock)
    start = rate.current(growing=False)
    clock.advance(30.0)
    assert rate.current(growing=False) == start  # nothing queued: nothing learned
    clock.advance(1.0)
    assert rate.current(growing=True) > start


def test_no_recovery_while_waiting_out_the_retry_after() -> None:
    clock = Clock()
    rate = AdaptiveRate(clock)
    rate.share = rate.ceiling = 0.5
    rate.on_rate_limited(clock.now, quiet_until=clock.now + 2.0)
    clock.advance(2.0)
    assert rate.current() == pytest.approx(0.5 * DECREASE)


async def test_after_a_429_pacing_restarts_without_a_saved_up_burst() -> None:
    limiter = ProviderLimiter(provider(rpm=6000))
    limiter.adaptive.share = 1.0
    with pytest.raises(RateLimited):
        async with limiter.slot(1):
            raise RateLimited("429", retry_after_s=0.2)
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with limiter.slot(1):
        pass
    waited = loop.time() - started
    assert waited >= 0.2  # the provider's wait is honoured
    bucket = limiter._requests
    assert bucket is not None
    # No burst saved up over the wait (that would be ~13 requests at 67/s): at most what
    # refilled since the wait ended, which a loaded machine stretches.
    assert bucket.level < 1.0 + bucket.rate * (waited - 0.2), (bucket.level, waited)


async def test_a_provider_without_a_configured_rpm_learns_one_from_its_first_429() -> None:
    limiter = ProviderLimiter(provider())
    for _ in range(20):
        async with limiter.slot(1):
            pass
    assert limiter.rpm is None
    with pytest.raises(RateLimited):
        async with limiter.slot(1):
            raise RateLimited("429", retry_after_s=0.01)
    assert limiter.rpm is not None and limiter._requests is not None
    assert limiter._requests.rate < limiter.rpm / 60  # and slowed down below it at once
