"""The circuit breaker: tells a provider outage apart from one job's persistent failure.

A provider is taken out only when many *different* jobs fail on it: within the last
BREAKER_WINDOW_S, at least BREAKER_MIN_JOBS distinct jobs must have failed and they must be at
least BREAKER_FAILURE_RATE of the distinct jobs that called it. One job failing again and again
(a prompt the provider chokes on, or a job that fails everywhere) counts once, so it moves on to
its fallback providers instead of closing a provider to every other job.

Closed -> open (outage) -> after the cooldown one probe call -> closed on its success, open
again (cooldown doubled) on its failure.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from schemas.errors import ProviderError

Clock = Callable[[], float]

BREAKER_WINDOW_S = 30.0  # how far back the outcomes of distinct jobs count
BREAKER_MIN_JOBS = 5  # distinct jobs failing within the window before an outage is declared
BREAKER_FAILURE_RATE = 0.5  # ... and their share of the distinct jobs that called the provider
BREAKER_COOLDOWN_S = 5.0  # first open period; doubles on every failed probe
BREAKER_MAX_COOLDOWN_S = 120.0
# Kept for callers that open the breaker by hand in tests: the failures (of distinct jobs) that
# open a breaker no job has succeeded on.
BREAKER_FAILURES = BREAKER_MIN_JOBS


class CircuitOpen(ProviderError):
    """The provider's breaker is open (or its one probe is out): route elsewhere for now."""

    type = "circuit_open"


class CircuitBreaker:
    """Failure rate over distinct jobs in a sliding window, then open / half-open / closed."""

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self._clock = clock
        self._outcomes: OrderedDict[str, tuple[float, bool]] = OrderedDict()  # job -> (t, failed)
        self.open_until: float | None = None
        self.cooldown_s = BREAKER_COOLDOWN_S
        self.probing = False
        self._anonymous = 0

    @property
    def state(self) -> str:
        if self.open_until is None:
            return "closed"
        return "half-open" if self._clock() >= self.open_until else "open"

    def allows(self) -> bool:
        """Whether routing may send this provider a call now."""
        state = self.state
        return state == "closed" or (state == "half-open" and not self.probing)

    def admit(self) -> bool:
        """Claim the right to send one call (in half-open: the single probe)."""
        if not self.allows():
            return False
        if self.state == "half-open":
            self.probing = True
        return True

    def failing_jobs(self) -> tuple[int, int]:
        """(distinct jobs whose last call failed, distinct jobs) within the window."""
        self._forget_old()
        failed = sum(1 for _, bad in self._outcomes.values() if bad)
        return failed, len(self._outcomes)

    def success(self, job: str | None = None) -> None:
        self._note(job, failed=False)
        if self.open_until is not None:  # the probe (or a call admitted before opening) worked
            self.open_until, self.probing = None, False
            self.cooldown_s = BREAKER_COOLDOWN_S
            self._outcomes.clear()  # judge the recovered provider afresh

    def failure(self, job: str | None = None) -> None:
        if self.probing:
            self.probing = False
            self.cooldown_s = min(BREAKER_MAX_COOLDOWN_S, self.cooldown_s * 2)
            self.open_until = self._clock() + self.cooldown_s
            return
        self._note(job, failed=True)
        if self.open_until is None and self._outage():
            self.open_until = self._clock() + self.cooldown_s

    def release_probe(self) -> None:
        """The probe ended without telling us anything (cancelled, or not the provider's fault)."""
        self.probing = False

    def _note(self, job: str | None, failed: bool) -> None:
        if job is None:  # a call outside any job: its own distinct caller
            self._anonymous += 1
            job = f"\0call-{self._anonymous}"
        self._outcomes.pop(job, None)
        self._outcomes[job] = (self._clock(), failed)  # most recent last
        self._forget_old()

    def _forget_old(self) -> None:
        horizon = self._clock() - BREAKER_WINDOW_S
        while self._outcomes:
            oldest = next(iter(self._outcomes.values()))
            if oldest[0] >= horizon:
                return
            self._outcomes.popitem(last=False)

    def _outage(self) -> bool:
        failed, seen = self.failing_jobs()
        return failed >= BREAKER_MIN_JOBS and failed >= BREAKER_FAILURE_RATE * seen
