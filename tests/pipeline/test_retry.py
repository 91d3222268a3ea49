"""The retry policy: what each error type leads to, and how long a retry waits."""

from __future__ import annotations

import asyncio
import random

import pytest

from pipeline.retry import Next, RetryPolicy, carried_error, sleep_unless
from schemas.config import RetryConfig
from schemas.errors import (
    PROVIDER_ERRORS,
    AuthError,
    ContextLength,
    InvalidOutput,
    Overloaded,
    ProviderError,
    QuotaExhausted,
    RateLimited,
    ServerError,
)
from schemas.jobs import ParkedState

TRANSIENT = ("rate_limited", "overloaded", "server_error", "timeout", "connection")


def policy(**fields: float) -> RetryPolicy:
    config = RetryConfig(
        **{"base_delay_s": 0.5, "max_delay_s": 8.0, "park_after_s": 10.0, **fields}
    )
    return RetryPolicy(config, random.Random(7))


@pytest.mark.parametrize("error_type", TRANSIENT)
def test_transient_errors_retry_the_same_model_until_max_retries(error_type: str) -> None:
    rules = policy(max_retries=3)
    error = PROVIDER_ERRORS[error_type]("boom")
    assert [rules.decide(error, n).next for n in range(4)] == [Next.RETRY] * 3 + [
        Next.NEXT_PROVIDER
    ]


@pytest.mark.parametrize(
    "error_type",
    ["not_found", "context_length", "invalid_request", "refusal", "invalid_output"],
)
def test_errors_that_retrying_cannot_fix_move_straight_to_the_next_model(error_type: str) -> None:
    assert policy().decide(PROVIDER_ERRORS[error_type]("no"), 0).next is Next.NEXT_MODEL


@pytest.mark.parametrize("error", [AuthError("bad key"), QuotaExhausted("no credit")])
def test_an_unusable_provider_is_skipped_entirely(error: ProviderError) -> None:
    assert policy().decide(error, 0).next is Next.NEXT_PROVIDER


def test_backoff_grows_exponentially_with_jitter_up_to_the_cap() -> None:
    rules = policy(base_delay_s=0.5, max_delay_s=4.0)
    for retries, cap in [(0, 0.5), (1, 1.0), (2, 2.0), (3, 4.0), (6, 4.0)]:
        delays = {rules.backoff_s(retries, None) for _ in range(50)}
        assert all(cap / 2 <= d <= cap for d in delays), (retries, delays)
        assert len(delays) > 1, "no jitter"


def test_a_retry_never_comes_sooner_than_the_provider_asked() -> None:
    decision = policy().decide(RateLimited("slow down", retry_after_s=7.5), 0)
    assert decision.next is Next.RETRY
    assert decision.delay_s == 7.5


def test_a_wait_longer_than_park_after_s_parks_the_job() -> None:
    decision = policy(park_after_s=10).decide(Overloaded("busy", retry_after_s=42.0), 1)
    assert decision.next is Next.PARK
    assert decision.delay_s == 42.0


def test_parking_for_an_open_breaker_is_bounded() -> None:
    rules = policy(max_parks=2)
    assert [rules.park_for_unavailable(n) is not None for n in range(3)] == [True, True, False]


def test_a_sleep_ends_early_when_the_worker_hurries() -> None:
    async def scenario() -> tuple[bool, bool]:
        hurry = asyncio.Event()
        slept = await sleep_unless(hurry, 0.01)
        asyncio.get_running_loop().call_later(0.02, hurry.set)
        interrupted = await asyncio.wait_for(sleep_unless(hurry, 30), 5)
        return slept, interrupted

    assert asyncio.run(scenario()) == (True, False)


def test_a_parked_jobs_last_error_comes_back_as_its_class() -> None:
    state = ParkedState(not_before=0, last_error_type="server_error", last_error="HTTP 500")
    error = carried_error(state)
    assert isinstance(error, ServerError) and str(error) == "HTTP 500"
    assert carried_error(ParkedState(not_before=0)) is None
    assert isinstance(
        carried_error(ParkedState(not_before=0, last_error_type="context_length")), ContextLength
    )
    assert isinstance(
        carried_error(ParkedState(not_before=0, last_error_type="invalid_output")), InvalidOutput
    )
