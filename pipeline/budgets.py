"""Cost caps: reserve a call's worst case before it is sent, settle at the actual cost after.

With a SpendLedger the holds and settlements go through the shared spend log (pipeline.spend),
so the caps hold across worker processes; without one the same book is kept in memory.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from pipeline.spend import SpendBook, SpendEvent, SpendLedger
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


@dataclass(frozen=True)
class Reservation:
    rid: str
    keys: tuple[str, ...]  # "<scope>:<match>:<window>@<window id>", one per matching cap
    amount: float


class Budgets:
    """Spend per (cap, window) = settled spend of every worker + every open reservation."""

    def __init__(
        self,
        budgets: list[BudgetConfig],
        ledger: SpendLedger | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._budgets = budgets
        self._ledger = ledger
        self._clock = clock
        self._book = ledger.book if ledger is not None else SpendBook()
        self._ids = itertools.count(1)

    def _caps(self, scope: CallScope) -> list[tuple[str, float]]:
        now = self._clock()
        return [
            (f"{budget_id(b)}@{window_key(b.window, now)}", b.limit_usd)
            for b in self._budgets
            if scope.matches(b)
        ]

    def spent(self, key: str) -> float:
        return self._book.spent(key)

    def would_fit(self, scope: CallScope, usd: float) -> bool:
        """Whether a hold of `usd` fits every matching cap, as far as this worker knows now."""
        caps = self._caps(scope)
        return self._book.fits([k for k, _ in caps], [c for _, c in caps], usd)

    def _rid(self) -> str:
        return self._ledger.new_rid() if self._ledger is not None else f"local:{next(self._ids)}"

    async def reserve(self, scope: CallScope, worst_case_usd: float) -> Reservation | None:
        """Hold `worst_case_usd` against every matching cap, or None if one would break."""
        caps = self._caps(scope)
        keys = tuple(k for k, _ in caps)
        if not caps:
            return Reservation(self._rid(), (), worst_case_usd)
        if not self._book.fits(keys, [c for _, c in caps], worst_case_usd):
            return None  # refused locally: no need to ask the log
        event = SpendEvent(
            "reserve", self._rid(), keys, worst_case_usd, self._clock(), tuple(c for _, c in caps)
        )
        granted = (
            await self._ledger.reserve(event)
            if self._ledger is not None
            else self._book.apply(event)
        )
        return Reservation(event.rid, keys, worst_case_usd) if granted else None

    async def settle(self, reservation: Reservation, actual_usd: float) -> None:
        if not reservation.keys:
            return
        event = SpendEvent("settle", reservation.rid, reservation.keys, actual_usd, self._clock())
        if self._ledger is not None:
            await self._ledger.publish(event)
        else:
            self._book.apply(event)

    def lines(self, scope_filter: Callable[[BudgetConfig], bool] | None = None) -> list[str]:
        """`scope:match:window $spent/$cap (share)` for each cap (or those `scope_filter` picks)."""
        now = self._clock()
        out = []
        for b in self._budgets:
            if scope_filter is not None and not scope_filter(b):
                continue
            spent = self.spent(f"{budget_id(b)}@{window_key(b.window, now)}")
            out.append(
                f"{budget_id(b)} ${spent:.4f}/${b.limit_usd:.2f} ({spent / b.limit_usd:.0%})"
            )
        return out

    def status(self) -> list[str]:
        """Caps not already on a provider's status line (model, kind and tenant scopes)."""
        unbound = self.lines(lambda b: b.scope in ("model", "kind", "tenant"))
        return [f"budget {line}" for line in unbound]

    def for_provider(self, provider: str) -> str:
        """The caps that bind this provider's calls, for its status line."""
        lines = self.lines(
            lambda b: b.scope in ("global", "provider") and b.match in (None, provider)
        )
        return "; ".join(lines)
