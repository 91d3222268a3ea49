"""Cost caps: reserve a call's worst case before it is sent, settle at the actual cost after.

With a SpendLedger the holds and settlements go through the shared spend log (pipeline.spend),
so the caps hold across worker processes; without one the same book is kept in memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from pipeline.spend import SpendBook, SpendEvent, SpendLedger
from schemas.config import BudgetConfig

# A call that fits a cap's settled spend but not the holds of calls in flight waits this long
# for them to settle before it goes to the next model: in-flight worst cases must not push
# work onto pricier models while the cap still has room.
HOLD_WAIT_S = 15.0


@dataclass(frozen=True)
class CallScope:
    """What a call is charged to, for matching against `[[budgets]]`."""

    provider: str
    model: str
    kind: str
    tenant: str
    user: str | None = None

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
        hold_wait_s: float = HOLD_WAIT_S,
    ) -> None:
        self._budgets = budgets
        self._hold_wait_s = hold_wait_s
        self._ledger = ledger
        self._clock = clock
        self._book = ledger.book if ledger is not None else SpendBook()
        self._ids = itertools.count(1)
        self._changed: asyncio.Event | None = None
        if ledger is not None:
            ledger.on_change = self._notify

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
        """Whether `usd` fits what every matching cap has left after settled spend (routing)."""
        caps = self._caps(scope)
        return self._book.fits([k for k, _ in caps], [c for _, c in caps], usd, holds=False)

    def _notify(self) -> None:
        changed, self._changed = self._changed, None
        if changed is not None:
            changed.set()

    async def _book_changes(self, timeout_s: float) -> None:
        if self._changed is None:
            self._changed = asyncio.Event()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), max(0.0, timeout_s))

    def _rid(self) -> str:
        return self._ledger.new_rid() if self._ledger is not None else f"local:{next(self._ids)}"

    async def reserve(self, scope: CallScope, worst_case_usd: float) -> Reservation | None:
        """Hold `worst_case_usd` against every matching cap, or None if one would break.

        While only other calls' holds stand in the way, wait (up to `hold_wait_s`) for them.
        """
        caps = self._caps(scope)
        keys, limits = tuple(k for k, _ in caps), tuple(c for _, c in caps)
        if not caps:
            return Reservation(self._rid(), (), worst_case_usd)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._hold_wait_s
        while self._book.fits(keys, limits, worst_case_usd, holds=False):
            if self._book.fits(keys, limits, worst_case_usd):
                held = await self._hold(keys, limits, worst_case_usd)
                if held is not None:
                    return held
            if loop.time() >= deadline:
                return None
            await self._book_changes(deadline - loop.time())
        return None

    async def _hold(
        self, keys: tuple[str, ...], limits: tuple[float, ...], usd: float
    ) -> Reservation | None:
        event = SpendEvent("reserve", self._rid(), keys, usd, self._clock(), limits)
        if self._ledger is not None:
            granted = await self._ledger.reserve(event)
        else:
            granted = self._book.apply(event)
        return Reservation(event.rid, keys, usd) if granted else None

    async def settle(self, reservation: Reservation, actual_usd: float) -> None:
        if not reservation.keys:
            return
        event = SpendEvent("settle", reservation.rid, reservation.keys, actual_usd, self._clock())
        if self._ledger is not None:
            await self._ledger.publish(event)
        else:
            self._book.apply(event)
            self._notify()

    def lines(self, scope_filter: Callable[[BudgetConfig], bool] | None = None) -> list[str]:
        """`scope:match:window $spent/$cap (share)` for each cap (or those `scope_filter` picks)."""
        now = self._clock()
        out = []
        for b in self._budgets:
            if scope_filter is not None and not scope_filter(b):
                continue
            spent = self.spent(f"{budget_id(b)}@{window_key(b.window, now)}")
            out.append(
                f"{budget_id(b)} ${spent:.6g}/${b.limit_usd:.6g} ({spent / b.limit_usd:.0%})"
            )
        return out

    def status(self) -> list[str]:
        """Caps not already on a provider's status line (model, kind and tenant scopes)."""
        unbound = self.lines(lambda b: b.scope in ("model", "kind", "tenant", "user"))
        return [f"budget {line}" for line in unbound]

    def for_provider(self, provider: str) -> str:
        """The caps that bind this provider's calls, for its status line."""
        lines = self.lines(
            lambda b: b.scope in ("global", "provider") and b.match in (None, provider)
        )
        return "; ".join(lines)
