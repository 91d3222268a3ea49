"""Simulator bookkeeping: the provider's request-rate bucket and the counters behind `/stats`."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from providers.sim.wire import LimitView, SimUsage

UNLIMITED_RPM = 10_000  # what the headers report when the simulated provider sets no limit


class RequestBucket:
    """Token bucket for one provider account: `rpm` per minute, bursts of about 1 s of quota."""

    def __init__(self, rpm: int | None, now: float) -> None:
        self.rpm = rpm
        self.rate = (rpm or UNLIMITED_RPM) / 60.0  # requests per second
        self.capacity = max(1.0, self.rate)
        self.tokens = self.capacity
        self.stamp = now

    def _refill(self, now: float) -> None:
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    def take(self, now: float) -> float:
        """Admit one request (0.0), or say how many seconds until one would be admitted."""
        if self.rpm is None:
            return 0.0
        self._refill(now)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate

    def view(self, now: float, retry_after_s: float | None = None) -> LimitView:
        limit = self.rpm or UNLIMITED_RPM
        if self.rpm is None:
            return LimitView(limit=limit, remaining=limit - 1, reset_s=0.006)
        self._refill(now)
        remaining = min(limit, int(self.tokens / self.capacity * limit))
        reset = (self.capacity - self.tokens) / self.rate
        return LimitView(
            limit=limit, remaining=remaining, reset_s=reset, retry_after_s=retry_after_s
        )


@dataclass(slots=True)
class ModelBill:
    """Calls naming one model and the usage billed for them, normalized like Frugal's `usage`."""

    calls: int = 0
    ok: int = 0
    rate_limited: int = 0
    errors_injected: int = 0
    invalid_answers: int = 0
    wrong_answers: int = 0  # valid but wrong (`wrong_rate`)
    input_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0

    def bill(self, usage: SimUsage) -> None:
        self.ok += 1
        self.input_tokens += usage.input_tokens
        self.cached_input_tokens += usage.cached_tokens
        self.cache_write_tokens += usage.cache_write_tokens
        self.output_tokens += usage.output_tokens
        self.reasoning_tokens += usage.reasoning_tokens


_USAGE_FIELDS = (
    "input_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "output_tokens",
    "reasoning_tokens",
)


@dataclass(slots=True)
class SimStats:
    """Everything the simulator answered since start (or the last reset)."""

    requests: int = 0
    ok: int = 0
    rate_limited: int = 0
    server_errors: int = 0
    overloaded: int = 0
    auth_failures: int = 0
    bad_requests: int = 0
    not_found: int = 0
    invalid_answers: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    by_protocol: Counter[str] = field(default_factory=Counter)
    models: dict[str, ModelBill] = field(default_factory=dict)

    def model(self, name: str) -> ModelBill:
        bill = self.models.get(name)
        if bill is None:
            bill = self.models[name] = ModelBill()
        return bill

    def snapshot(self) -> dict[str, Any]:
        """A JSON-ready copy: counters, per-model bills, and the usage summed over models."""
        models = {name: asdict(bill) for name, bill in sorted(self.models.items())}
        return {
            "requests": self.requests,
            "ok": self.ok,
            "rate_limited": self.rate_limited,
            "errors_injected": self.server_errors + self.overloaded,
            "server_errors": self.server_errors,
            "overloaded": self.overloaded,
            "auth_failures": self.auth_failures,
            "bad_requests": self.bad_requests,
            "not_found": self.not_found,
            "invalid_answers": self.invalid_answers,
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
            "by_protocol": dict(self.by_protocol),
            "models": models,
            "usage": {f: sum(m[f] for m in models.values()) for f in _USAGE_FIELDS},
        }
