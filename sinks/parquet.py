"""The Parquet sink: buffers table rows, writes them atomically, then reports records durable."""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import pyarrow as pa

from schemas.config import StorageConfig
from schemas.rows import Row
from sinks import lake
from sinks.errors import SinkWriteError
from sinks.journal import Journal, segment_file_name

logger = logging.getLogger(__name__)

OnDurable = Callable[[], object]  # e.g. faust's Event.ack, which returns a bool
# (table, kind, UTC date): one Parquet file per group and flush.
GroupKey = tuple[str, str, date]


@dataclass
class _Batch:
    """Rows not yet durable, grouped by file, plus the callbacks of the records they came from."""

    groups: dict[GroupKey, list[Row]] = field(default_factory=dict)
    callbacks: list[OnDurable | None] = field(default_factory=list)
    rows: int = 0
    segment: int | None = None  # the journal segment holding the same rows

    def absorb(self, later: _Batch) -> None:
        """Append a later batch, keeping row and callback order."""
        for key, rows in later.groups.items():
            self.groups.setdefault(key, []).extend(rows)
        self.callbacks.extend(later.callbacks)
        self.rows += later.rows


class ParquetSink:
    """Commit-after-flush: `on_durable` of a record runs only once all its rows are on disk:
    in the journal (fsynced as they come, see sinks/journal.py) or, without one, in Parquet.

    Not thread-safe: call `add`, `flush` and `run` from one event loop. Writing happens in a
    worker thread so the loop keeps serving records during a flush.
    """

    def __init__(self, storage: StorageConfig, worker_id: str) -> None:
        self.storage = storage
        self.lake_dir = storage.lake_dir
        self.worker_id = re.sub(r"[^A-Za-z0-9_.-]", "_", worker_id) or "worker"
        # A fresh session per sink: a restarted worker with the same id never reuses a name.
        session = f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}"
        self._file_prefix = f"{self.worker_id}-{session}"
        self._seq = itertools.count()
        self._buffer = _Batch()  # added since the last flush started
        self._unwritten = _Batch()  # taken by the running flush, or left over by a failed one
        self._flushing = False
        self._flush_lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._known_dirs: set[Path] = set()
        self._unsynced_dirs: set[Path] = set()
        self.files_written = 0
        self._journal = Journal(storage.journal_dir, self._file_prefix) if storage.journal else None
        self._journal_open = False

    # -- intake ---------------------------------------------------------------------------

    def add(self, rows: Sequence[Row], on_durable: OnDurable | None = None) -> None:
        """Buffer the rows of one record; `on_durable` runs after the flush that writes them."""
        groups = self._buffer.groups
        for row in rows:
            key = (row.table, row.kind, lake.row_date(row))
            bucket = groups.get(key)
            if bucket is None:
                groups[key] = [row]
            else:
                bucket.append(row)
        if self._journal is not None:
            if not self._journal_open:
                self._journal.open()
                self._journal_open = True
            self._journal.append(rows, on_durable)
            on_durable = None  # run by the journal once fsynced
        self._buffer.callbacks.append(on_durable)
        self._buffer.rows += len(rows)
        waiting = self._buffer.rows + (0 if self._flushing else self._unwritten.rows)
        if waiting >= self.storage.flush_rows:
            self._wake.set()

    @property
    def pending_rows(self) -> int:
        """Rows not yet durable (buffered, being written, or kept after a failed write)."""
        return self._buffer.rows + self._unwritten.rows

    @property
    def pending_records(self) -> int:
        """Records whose rows are not in Parquet yet."""
        return len(self._buffer.callbacks) + len(self._unwritten.callbacks)

    @property
    def awaiting_ack(self) -> int:
        """Records whose `on_durable` has not run yet."""
        return self._journal.unsynced_records if self._journal else self.pending_records

    def close(self) -> None:
        """After the final flush: a clean stop leaves no journal behind."""
        if self._journal is not None and self._journal_open:
            self._journal.close()
            self._journal_open = False

    # -- flushing -------------------------------------------------------------------------

    async def flush(self) -> None:
        """Write every buffered group as one file each, then run the records' callbacks in order.

        On failure nothing is acknowledged: groups not written stay buffered for the next flush
        (groups already written are not written twice) and `SinkWriteError` is raised. With a
        journal, a batch left by a failed flush is retried alone: it stays one segment.
        """
        async with self._flush_lock:
            if self._unwritten.callbacks and self._journal_open:
                await self._write_batch(self._unwritten)  # alone: it is one journal segment
            batch = self._unwritten
            batch.absorb(self._buffer)
            self._buffer = _Batch()
            self._wake.clear()
            if not batch.callbacks:
                return
            if self._journal is not None and self._journal_open:
                batch.segment = self._journal.rotate()
            self._unwritten = batch
            await self._write_batch(batch)

    async def _write_batch(self, batch: _Batch) -> None:
        self._flushing = True
        try:
            if self._journal is not None:
                await self._journal.settled()  # the segment holds every row before it is dropped
            await self._write_in_thread(batch.groups, batch.segment)
        except Exception as exc:
            logger.error(
                "Parquet flush failed; %d records stay unacknowledged, their rows buffered: %s",
                len(batch.callbacks),
                exc,
            )
            raise SinkWriteError(f"could not write Parquet files: {exc}") from exc
        finally:
            self._flushing = False
            batch.rows = sum(len(rows) for rows in batch.groups.values())
        self._unwritten = _Batch()
        if self._journal is not None and batch.segment is not None:
            self._journal.drop([batch.segment])
        _run_callbacks(batch.callbacks)

    async def _write_in_thread(
        self, groups: dict[GroupKey, list[Row]], segment: int | None
    ) -> None:
        writing = asyncio.ensure_future(asyncio.to_thread(self._write_groups, groups, segment))
        try:
            await asyncio.shield(writing)
        except asyncio.CancelledError:
            await asyncio.wait({writing})  # never leave a thread writing once the lock is released
            raise

    def _write_groups(self, groups: dict[GroupKey, list[Row]], segment: int | None) -> None:
        """Runs in a worker thread; removes each group from `groups` once its file is in place."""
        unsynced = self._unsynced_dirs
        try:
            for key in list(groups):
                table, kind, day = key
                directory = lake.partition_dir(self.lake_dir, table, kind, day)
                name = (
                    f"{self._file_prefix}-{next(self._seq):06d}"
                    if segment is None  # a journal segment's files are named after it
                    else segment_file_name(self._file_prefix, segment)
                )
                data = self._to_table(groups[key], name)
                try:
                    self._ensure_dir(directory)
                    if data.num_rows:
                        lake.write_parquet_atomically(data, directory / f"{name}.parquet")
                        self.files_written += 1
                except OSError:
                    self._known_dirs.discard(directory)  # it may have gone; re-create on retry
                    raise
                unsynced.add(directory)
                del groups[key]
        finally:
            # Renames done so far must be made durable even if a later group failed; a directory
            # whose fsync fails stays listed and is synced before the next flush acknowledges.
            for directory in sorted(unsynced):
                lake.fsync_dir(directory)
                unsynced.discard(directory)

    def _to_table(self, rows: list[Row], name: str) -> pa.Table:
        """Rows that cannot fit the Arrow schema go to a quarantine file instead of blocking."""
        schema = type(rows[0]).arrow_schema
        try:
            return lake.rows_to_table(rows, schema)
        except (pa.ArrowException, ValueError, TypeError, OverflowError):
            fits, misfits = lake.split_convertible(rows, schema)
            path = lake.quarantine(self.storage.data_dir, f"{name}.jsonl", misfits)
            logger.error(
                "%d %s rows do not fit its schema; kept in %s", len(misfits), rows[0].table, path
            )
            return lake.rows_to_table(fits, schema)

    def _ensure_dir(self, directory: Path) -> None:
        if directory in self._known_dirs:
            return
        lake.make_dirs(directory)
        self._known_dirs.add(directory)

    async def run(self, stop: asyncio.Event) -> None:
        """Flush every `flush_interval_s` or once `flush_rows` rows wait; flush once more on stop.

        A failed periodic flush is logged and retried one interval later; a failed final flush
        raises `SinkWriteError` (its records stay unacknowledged, so Kafka will redeliver them).
        """
        interval = self.storage.flush_interval_s
        stopping = asyncio.ensure_future(stop.wait())
        try:
            while not stop.is_set():
                woken = asyncio.ensure_future(self._wake.wait())
                try:
                    await asyncio.wait(
                        {woken, stopping}, timeout=interval, return_when=asyncio.FIRST_COMPLETED
                    )
                finally:
                    woken.cancel()
                if stop.is_set():
                    break
                try:
                    await self.flush()
                except SinkWriteError:
                    await asyncio.wait({stopping}, timeout=interval)  # back off instead of spinning
        finally:
            stopping.cancel()
        await self.flush()


def _run_callbacks(callbacks: list[OnDurable | None]) -> None:
    for callback in callbacks:
        if callback is None:
            continue
        try:
            callback()
        except Exception:
            logger.exception("on_durable callback failed")
