"""Backpressure on intake: stop fetching while the records in flight wait on saturated providers."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

log = logging.getLogger("frugal.worker")
RESUME_SHARE = 0.75  # fetching resumes once in-flight records drop to this share of the bound


class IntakeGate:
    """Pauses this worker's partitions at `high` records in flight, resumes at RESUME_SHARE of it.

    While paused, faust fetches nothing more from those partitions: a backlog stays in Kafka,
    not in memory. `consumer` is faust's (pause_partitions / resume_partitions / assignment).
    """

    def __init__(
        self,
        consumer: Callable[[], Any],
        topics: Iterable[str],
        high: int,
        saturated: Callable[[], list[str]],
    ) -> None:
        self._consumer = consumer
        self._topics = set(topics)
        self.high = high
        self.low = max(0, int(high * RESUME_SHARE))
        self._saturated = saturated
        self.paused: set[Any] = set()
        self.pauses = 0
        self._since = 0.0
        self.paused_s = 0.0
        self.closed = False

    def close(self) -> None:
        """Stop fetching for good (shutdown): what is still on Kafka stays there."""
        self.closed = True
        self._pause()

    def _ours(self) -> set[Any]:
        return {tp for tp in self._consumer().assignment() if tp.topic in self._topics}

    def update(self, in_flight: int) -> None:
        """Called whenever the number of records in flight changes."""
        if in_flight >= self.high or self.closed:
            self._pause()
        elif self.paused and in_flight <= self.low:
            self._resume()

    def _pause(self) -> None:
        consumer = self._consumer()
        ours = self._ours()
        # New since the last pause, or re-activated by faust when their stream buffer drained.
        fresh = (ours - self.paused) | (ours & consumer._get_active_partitions())
        if not fresh:
            return
        # faust's fetch loop holds the live set of active partitions and silently skips the
        # records of a partition removed from it mid-batch (never redelivered until a restart):
        # pause through a fresh copy so the batch in hand is still delivered in full.
        consumer._active_partitions = set(consumer._get_active_partitions())
        consumer.pause_partitions(fresh)
        if not self.paused:
            self.pauses += 1
            self._since = time.monotonic()
            if self.closed:
                log.info("intake closed: the rest stays on Kafka")
            else:
                log.info(
                    "intake paused: %d records in flight (saturated: %s)",
                    self.high,
                    ", ".join(self._saturated()) or "-",
                )
        self.paused |= fresh

    def _resume(self) -> None:
        consumer = self._consumer()
        # Partitions faust holds back itself (their stream buffer is full) stay held back.
        held: set[Any] = getattr(consumer, "_buffered_partitions", set())
        still_ours = (self.paused & self._ours()) - held
        if still_ours:
            consumer.resume_partitions(still_ours)
        self.paused.clear()
        self.paused_s += time.monotonic() - self._since
        log.debug("intake resumed")

    def status(self) -> str:
        consumer = self._consumer()
        read = getattr(consumer, "_read_offset", {})
        committed = getattr(consumer, "_committed_offset", {})
        ahead = sum(
            max(0, (read.get(tp) or 0) + 1 - (committed.get(tp) or 0))
            for tp in self._ours()
            if read.get(tp) is not None
        )
        state = "paused" if self.paused else "open"
        return (
            f"intake {state}: read-not-committed={ahead} pauses={self.pauses} "
            f"paused_total={self.paused_s:.0f}s"
        )
