"""Spend shared by every worker: reserve/settle events on one Kafka partition, replayed in order.

Why one ordered log: each worker consumes the `<prefix>.spend` topic's partition 0 from the
beginning and applies every event to the same `SpendBook` state machine. A reservation is
granted or refused by the book *when it is read back from the log*, not when it is sent, so all
workers reach the same decision for it and two workers can never both take the last dollars:
the later one in the log sees the earlier one's hold. A restarted worker loads the latest
snapshot of the book and replays the log from the offset it covers (pipeline.spend_snapshot),
so start-up reads at most about SNAPSHOT_EVERY events however long the history.

Worst-case overshoot of a cap, across any number of workers: none from races. A cap can only
be exceeded by (a) a call whose actual cost is above its reservation (the reservation is the
full output allowance plus a margin on the estimated input, so only a tokenizer that counts
input more than ~25% above our estimate can do it, by that excess), and (b) a reservation
older than RESERVATION_TTL_S, which is presumed to belong to a crashed worker and released;
a live call that outlasts it (a provider timeout above ten minutes) could overshoot by its own
cost. A crashed worker's holds, the other way round, keep headroom back for at most the TTL.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
from collections.abc import Callable

from bus.partition_log import LogUnavailable, PartitionLog
from pipeline.spend_book import (
    LIMIT_SLACK_USD,
    RESERVATION_TTL_S,
    Hold,
    SpendBook,
    SpendEvent,
)
from pipeline.spend_snapshot import SNAPSHOT_EVERY, SNAPSHOT_KEY, BookSnapshot, latest_snapshot

__all__ = [
    "LIMIT_SLACK_USD",
    "RESERVATION_TTL_S",
    "Hold",
    "SpendBook",
    "SpendEvent",
    "SpendLedger",
]

log = logging.getLogger("frugal.spend")

FETCH_WAIT_MS = 20  # how long a fetch may idle: bounds the reserve round trip (~10-20 ms)
GRANT_TIMEOUT_S = 30.0


class SpendLedger:
    """This worker's connection to the spend log: publishes its events, replays everyone's."""

    def __init__(
        self, bootstrap: str, topic: str, worker_id: str, snapshot_topic: str | None = None
    ) -> None:
        self.book = SpendBook()
        self._topic = topic  # partition 0 only: one order for every worker
        self._snapshot_topic = snapshot_topic or f"{topic}.snapshots"
        self.snapshot_every = SNAPSHOT_EVERY
        self._covered = 0  # spend-log offset the latest snapshot we know of covers up to
        self._next_offset = 0
        self._last_ts = 0.0
        self.snapshots_written = 0
        self._bootstrap = bootstrap
        self._prefix = f"{worker_id}:{os.urandom(4).hex()}"
        self._ids = itertools.count(1)
        self._pending: dict[str, asyncio.Future[bool]] = {}
        self._log: PartitionLog | None = None
        self._task: asyncio.Task[None] | None = None
        self.events_read = 0
        self.on_change: Callable[[], None] | None = None  # called after each batch is applied

    def new_rid(self) -> str:
        return f"{self._prefix}:{next(self._ids)}"

    async def start(self) -> None:
        self._log = PartitionLog(self._bootstrap, self._topic, fetch_wait_ms=FETCH_WAIT_MS)
        await self._log.start()
        await self._resume_from_snapshot()
        await self._log.read_from(self._next_offset)
        self._task = asyncio.create_task(self._replay(), name="spend-log")

    async def _resume_from_snapshot(self) -> None:
        assert self._log is not None
        try:
            snapshot = await latest_snapshot(self._log, self._snapshot_topic)
        except LogUnavailable as exc:
            log.warning("spend: no snapshot read (%s); replaying the whole log", exc)
            snapshot = None
        if snapshot is not None:
            snapshot.restore(self.book)  # in place: Budgets holds this very book
            self._covered = self._next_offset = snapshot.offset
            self._last_ts = snapshot.last_ts
            log.info("spend: resumed from a snapshot at offset %d", snapshot.offset)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._log is not None:
            await self._log.stop()

    async def reserve(self, event: SpendEvent) -> bool:
        """Publish a hold and wait until the log decides on it (refused after GRANT_TIMEOUT_S)."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._pending[event.rid] = future
        try:
            await self.publish(event)
            return await asyncio.wait_for(asyncio.shield(future), GRANT_TIMEOUT_S)
        except (TimeoutError, LogUnavailable) as exc:
            log.warning("spend: no decision on a reservation (%s); treating it as refused", exc)
            return False
        finally:
            self._pending.pop(event.rid, None)

    async def publish(self, event: SpendEvent) -> None:
        assert self._log is not None, "SpendLedger.start() first"
        await self._log.append(event.rid, event.to_bytes())

    async def _replay(self) -> None:
        assert self._log is not None
        while True:
            try:
                records = await self._log.read(timeout_ms=1000)
            except LogUnavailable as exc:
                log.warning("spend: %s; retrying", exc)
                await asyncio.sleep(1.0)
                continue
            for record in records:
                self._read(record.value)
                self._next_offset = record.offset + 1
            if records and self.on_change is not None:
                self.on_change()
            if self._next_offset - self._covered >= self.snapshot_every:
                await self._write_snapshot()

    async def _write_snapshot(self) -> None:
        """Publish the book as of `_next_offset`; a failure only means a longer next start-up."""
        assert self._log is not None
        snapshot = BookSnapshot.of(self.book, self._next_offset, self._last_ts)
        self._covered = snapshot.offset
        try:
            await self._log.put_last(self._snapshot_topic, SNAPSHOT_KEY, snapshot.to_bytes())
            self.snapshots_written += 1
        except LogUnavailable as exc:
            log.warning("spend: could not write a snapshot (%s)", exc)

    def _read(self, raw: bytes) -> None:
        try:
            event = SpendEvent.from_bytes(raw)
        except (ValueError, KeyError, TypeError):
            log.warning("spend: skipped an unreadable spend event")
            return
        granted = self.book.apply(event)
        self.events_read += 1
        self._last_ts = max(self._last_ts, event.ts)
        future = self._pending.get(event.rid)
        if future is not None and event.op == "reserve" and not future.done():
            future.set_result(granted)
