"""The spend book: settled spend and open holds per budget key, a deterministic state machine.

Every worker applies the same spend-log events (pipeline.spend) in the same order to its own
book, so every book reaches the same decision on every reservation.
"""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

log = logging.getLogger("frugal.spend")

RESERVATION_TTL_S = 600.0  # an unsettled hold older than this belonged to a crashed worker
LIMIT_SLACK_USD = 1e-12  # float sums: a reservation that lands exactly on the cap fits


@dataclass(frozen=True)
class SpendEvent:
    """One line of the spend log: a hold of `usd` on `keys` (with their caps), or its settlement."""

    op: Literal["reserve", "settle"]
    rid: str
    keys: tuple[str, ...]
    usd: float
    ts: float  # wall clock of the worker that wrote it
    limits: tuple[float, ...] = ()  # reserve: the cap of each key, as its worker configured it

    def to_bytes(self) -> bytes:
        return json.dumps(
            {
                "op": self.op,
                "rid": self.rid,
                "keys": self.keys,
                "usd": self.usd,
                "ts": self.ts,
                "limits": self.limits,
            }
        ).encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> SpendEvent:
        data = json.loads(raw)
        return cls(
            op=data["op"],
            rid=str(data["rid"]),
            keys=tuple(data["keys"]),
            usd=float(data["usd"]),
            ts=float(data["ts"]),
            limits=tuple(float(x) for x in data.get("limits", ())),
        )


@dataclass(frozen=True)
class Hold:
    keys: tuple[str, ...]
    usd: float
    ts: float


class SpendBook:
    """Settled spend and open holds per budget key; the same events give the same book."""

    def __init__(self) -> None:
        self.settled: dict[str, float] = {}
        self.held: dict[str, float] = {}
        self.holds: OrderedDict[str, Hold] = OrderedDict()  # in log order, so oldest first

    def spent(self, key: str) -> float:
        return self.settled.get(key, 0.0) + self.held.get(key, 0.0)

    def fits(
        self, keys: Sequence[str], limits: Sequence[float], usd: float, holds: bool = True
    ) -> bool:
        """Whether `usd` more fits every cap, counting open holds (or only settled spend)."""
        spent = self.spent if holds else (lambda k: self.settled.get(k, 0.0))
        return all(
            spent(k) + usd <= limit + LIMIT_SLACK_USD for k, limit in zip(keys, limits, strict=True)
        )

    def apply(self, event: SpendEvent) -> bool:
        """Apply one event; for a reserve, whether it was granted."""
        self._expire(event.ts)
        if event.op == "settle":
            self._settle(event)
            return True
        if event.rid in self.holds:
            return True
        if not self.fits(event.keys, event.limits, event.usd):
            return False
        self.holds[event.rid] = Hold(event.keys, event.usd, event.ts)
        for k in event.keys:
            self.held[k] = self.held.get(k, 0.0) + event.usd
        return True

    def _settle(self, event: SpendEvent) -> None:
        hold = self.holds.pop(event.rid, None)
        if hold is not None:
            self._release(hold)
        for k in hold.keys if hold is not None else event.keys:
            self.settled[k] = self.settled.get(k, 0.0) + event.usd

    def _release(self, hold: Hold) -> None:
        for k in hold.keys:
            self.held[k] = max(0.0, self.held.get(k, 0.0) - hold.usd)

    def _expire(self, now: float) -> None:
        while self.holds:
            rid, hold = next(iter(self.holds.items()))
            if hold.ts >= now - RESERVATION_TTL_S:
                return
            del self.holds[rid]
            self._release(hold)
            log.warning(
                "spend: released a hold of $%.6f older than %.0f s", hold.usd, RESERVATION_TTL_S
            )
