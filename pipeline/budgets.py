"""Cost caps: reserve a call's worst case before it is sent, settle at the actual cost after."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from schemas.config import BudgetConfig


@dataclass(frozen=True)
class CallScope:
    """What a call is charged to, for matching against `[[budgets]]`."""

    provider: str
    model: str
    kind: str
    tenant: str

    def matches(self, budget: BudgetConfig) -> bool:
        if budget.scope == "global":
            return True
        return getattr(self, budget.scope) == budget.match


def window_key(window: str, now: float) -> str:
    t = datetime.fromtimestamp(now, UTC)
    return {
        "hour": t.strftime("%Y-%m-%dT%H"),
        "day": t.strftime("%Y-%m-%d"),
        "month": t.strftime("%Y-%m"),
        "total": "total",
    }[window]


def budget_id(budget: BudgetConfig) -> str:
    return f"{budget.scope}:{budget.match or '*'}:{budget.window}"


@dataclass
class Reservation:
    id: int
    keys: list[str]
    amount: float


class Budgets:
    """Spend per (budget, window) = settled spend (shared) + this worker's open reservations."""

    def __init__(self, budgets: list[BudgetConfig], clock: Callable[[], float] = time.time) -> None:
        self._budgets = budgets
        self._clock = clock
        self._settled: dict[str, float] = {}
        self._reserved: dict[str, float] = {}
        self._open: dict[int, Reservation] = {}
        self._ids = itertools.count(1)

    def _keys(self, scope: CallScope) -> list[tuple[str, BudgetConfig]]:
        now = self._clock()
        return [
            (f"{budget_id(b)}@{window_key(b.window, now)}", b)
            for b in self._budgets
            if scope.matches(b)
        ]

    def spent(self, key: str) -> float:
        return self._settled.get(key, 0.0) + self._reserved.get(key, 0.0)

    def reserve(self, scope: CallScope, worst_case_usd: float) -> Reservation | None:
        """Hold `worst_case_usd` against every matching cap, or None if one would break."""
        keys = self._keys(scope)
        if any(self.spent(k) + worst_case_usd > b.limit_usd for k, b in keys):
            return None
        reservation = Reservation(next(self._ids), [k for k, _ in keys], worst_case_usd)
        for k in reservation.keys:
            self._reserved[k] = self._reserved.get(k, 0.0) + worst_case_usd
        self._open[reservation.id] = reservation
        return reservation

    def settle(self, reservation: Reservation, actual_usd: float) -> None:
        if self._open.pop(reservation.id, None) is None:
            return
        for k in reservation.keys:
            self._reserved[k] = self._reserved.get(k, 0.0) - reservation.amount
            self.record_spend(k, actual_usd)

    def record_spend(self, key: str, usd: float) -> None:
        self._settled[key] = self._settled.get(key, 0.0) + usd

    def status(self) -> list[str]:
        now = self._clock()
        lines = []
        for b in self._budgets:
            key = f"{budget_id(b)}@{window_key(b.window, now)}"
            lines.append(f"budget {budget_id(b)}: ${self.spent(key):.4f} of ${b.limit_usd:.2f}")
        return lines
