"""Snapshots of the spend book, so that start-up reads the latest one and the log's tail only.

Every worker replays the same spend log into the same `SpendBook`, so the book after the
record at offset `o - 1` is the same in every worker: a snapshot of it, tagged with `o` (the
first offset it does not cover), can stand in for the log's first `o` records. Any worker whose
replay crosses SNAPSHOT_EVERY records past the last snapshot writes one to the
`<prefix>.spend.snapshots` topic (one partition, compacted, one key: only the latest matters).
A starting worker reads that topic's last record, loads it, and replays the spend log from `o`:
at most about SNAPSHOT_EVERY records, however long the history. Decisions stay exact: a
reservation is still granted or refused by the book as of its own place in the log.

A snapshot leaves out the settled spend of windows that are over (hours, days and months more
than two windows before its newest event): no reservation is charged to them any more, so the
snapshot does not grow with history either.
"""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bus.partition_log import PartitionLog
from pipeline.spend_book import Hold, SpendBook

log = logging.getLogger("frugal.spend")

SNAPSHOT_EVERY = 10_000  # spend-log records between snapshots: the most a start-up replays
SNAPSHOT_KEY = b"book"
# Window ids by length (see pipeline.budgets.window_key) and how far back a window stays open.
_WINDOW_FORMATS = {13: ("%Y-%m-%dT%H", timedelta(hours=2)), 10: ("%Y-%m-%d", timedelta(days=2))}
_MONTH_LEN, _MONTH_KEEP = 7, timedelta(days=62)


@dataclass(frozen=True)
class BookSnapshot:
    """The book as of the spend log's first `offset` records."""

    offset: int
    settled: dict[str, float]
    holds: list[tuple[str, Hold]]
    last_ts: float = 0.0

    @classmethod
    def of(cls, book: SpendBook, offset: int, last_ts: float) -> BookSnapshot:
        settled = {k: v for k, v in book.settled.items() if _window_open(k, last_ts)}
        return cls(offset, settled, list(book.holds.items()), last_ts)

    def to_bytes(self) -> bytes:
        return json.dumps(
            {
                "offset": self.offset,
                "last_ts": self.last_ts,
                "settled": self.settled,
                "holds": [[rid, h.keys, h.usd, h.ts] for rid, h in self.holds],
            }
        ).encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> BookSnapshot:
        data = json.loads(raw)
        holds = [(str(r), Hold(tuple(k), float(u), float(t))) for r, k, u, t in data["holds"]]
        settled = {str(k): float(v) for k, v in data["settled"].items()}
        return cls(int(data["offset"]), settled, holds, float(data.get("last_ts", 0.0)))

    def restore(self, book: SpendBook | None = None) -> SpendBook:
        """The book as of the snapshot: `book` itself (others may hold it) or a new one."""
        book = book if book is not None else SpendBook()
        book.settled = dict(self.settled)
        book.holds = OrderedDict(self.holds)
        book.held = {}
        for hold in book.holds.values():
            for k in hold.keys:
                book.held[k] = book.held.get(k, 0.0) + hold.usd
        return book


def _window_open(key: str, now: float) -> bool:
    """Whether a book key's window (`<cap>@<window id>`) may still be charged."""
    window = key.rpartition("@")[2]
    at = datetime.fromtimestamp(now, UTC)
    if len(window) in _WINDOW_FORMATS:
        fmt, keep = _WINDOW_FORMATS[len(window)]
        return window >= (at - keep).strftime(fmt)
    if len(window) == _MONTH_LEN and window[4:5] == "-":
        return window >= (at - _MONTH_KEEP).strftime("%Y-%m")
    return True  # "total", or a key this module does not know: keep it


async def latest_snapshot(spend_log: PartitionLog, topic: str) -> BookSnapshot | None:
    """The last snapshot on `topic` (read from its end, not its start), or None."""
    for raw in reversed(await spend_log.last_records(topic)):
        try:
            return BookSnapshot.from_bytes(raw)
        except (ValueError, KeyError, TypeError):
            log.warning("spend: skipped an unreadable snapshot; replaying the whole log")
    return None
