"""The breaker opens on an outage (many distinct jobs failing), not on one job failing often."""

from __future__ import annotations

import pytest

from pipeline.breaker import (
    BREAKER_COOLDOWN_S,
    BREAKER_MIN_JOBS,
    BREAKER_WINDOW_S,
    CircuitBreaker,
)
from pipeline.limits import ProviderLimiter
from schemas.config import ProviderConfig
from schemas.errors import ServerError


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_one_job_failing_again_and_again_does_not_open_the_breaker() -> None:
    breaker = CircuitBreaker(Clock())
    for _ in range(50):
        breaker.failure("the-same-job")
    assert breaker.state == "closed" and breaker.failing_jobs() == (1, 1)


def test_distinct_jobs_failing_open_it() -> None:
    breaker = CircuitBreaker(Clock())
    for i in range(BREAKER_MIN_JOBS):
        assert breaker.allows()
        breaker.failure(f"job-{i}")
    assert breaker.state == "open"


def test_a_few_jobs_failing_among_many_that_succeed_do_not_open_it() -> None:
    breaker = CircuitBreaker(Clock())
    for i in range(80):
        breaker.success(f"ok-{i}")
    for i in range(20):
        for _ in range(3):
            breaker.failure(f"bad-{i}")
    assert breaker.state == "closed"
    assert breaker.failing_jobs() == (20, 100)


def test_old_outcomes_leave_the_window() -> None:
    clock = Clock()
    breaker = CircuitBreaker(clock)
    for i in range(BREAKER_MIN_JOBS - 1):
        breaker.failure(f"job-{i}")
    clock.now += BREAKER_WINDOW_S + 1
    breaker.failure("late")
    assert breaker.state == "closed" and breaker.failing_jobs() == (1, 1)


def test_a_job_that_recovers_counts_as_a_success() -> None:
    breaker = CircuitBreaker(Clock())
    breaker.failure("job")
    breaker.success("job")
    assert breaker.failing_jobs() == (0, 1)


def test_after_the_cooldown_one_probe_closes_it_again() -> None:
    clock = Clock()
    breaker = CircuitBreaker(clock)
    for i in range(BREAKER_MIN_JOBS):
        breaker.failure(f"job-{i}")
    clock.now += BREAKER_COOLDOWN_S
    assert breaker.admit() and not breaker.admit()
    breaker.success("probe")
    assert breaker.state == "closed" and breaker.failing_jobs() == (0, 0)


async def test_failures_of_a_job_that_failed_elsewhere_are_not_blamed_on_the_provider() -> None:
    limiter = ProviderLimiter(ProviderConfig(name="p", base_url="http://127.0.0.1:1/v1"))
    for i in range(3 * BREAKER_MIN_JOBS):
        with pytest.raises(ServerError):
            async with limiter.slot(1, f"job-{i}", blame=False):
                raise ServerError("503")
    assert limiter.available() and limiter.failed == 3 * BREAKER_MIN_JOBS
