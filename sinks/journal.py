"""The sink's write-ahead journal: a record's rows are on local disk before its offset may commit.

Parquet files are written once per flush interval; without the journal a `kill -9` loses the
rows of every record answered since the last flush, and their jobs are paid for again. With it,
rows are appended to a segment file and fsynced (one fsync for every record that arrived while
the previous one ran: group commit) before the record is acked, so only calls on the wire are
lost. Each Parquet flush takes exactly one segment's rows and deletes the segment once its files
are in place; its files are named after the segment, so a segment left behind by a crash between
the two is recovered without writing any row twice.

Segments live in `<data_dir>/journal/<session>/`, locked (flock) by the live worker. A worker
that starts, or takes partitions over, writes the segments of sessions nobody holds any more
(a worker that died) to the lake before it reads which jobs are done.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from pydantic import ValidationError

from schemas.rows import TABLE_ROWS, Row
from sinks import lake

logger = logging.getLogger(__name__)

OnDurable = Callable[[], object]
LOCK_NAME = "lock"
SEGMENT_SUFFIX = ".jsonl"


def segment_file_name(session: str, segment: int) -> str:
    """The Parquet file name (per table partition) of one segment's rows."""
    return f"{session}-j{segment:06d}"


def encode_rows(rows: Sequence[Row]) -> bytes:
    """One JSON line per row: `{"table": ..., "row": {...}}`. pydantic's own JSON encoder
    writes the row (2.5x faster than json.dumps of model_dump, the same values read back),
    as bytes straight from its serializer (`model_dump_json` makes a str to encode again)."""
    return b"".join(
        b'{"table":"%s","row":%s}\n' % (r.table.encode(), r.__pydantic_serializer__.to_json(r))
        for r in rows
    )


def decode_rows(data: bytes) -> list[Row]:
    """Rows of a segment; a torn last line (the process died mid-write) was never acked."""
    rows: list[Row] = []
    for line in data.splitlines():
        try:
            entry = json.loads(line)
            rows.append(TABLE_ROWS[entry["table"]].model_validate(entry["row"]))
        except (ValueError, KeyError, TypeError, ValidationError):
            logger.warning("journal: skipped an unreadable line (a write cut short by a crash)")
    return rows


@dataclass
class _Pending:
    lines: dict[int, list[bytes]] = field(default_factory=dict)  # segment -> encoded rows
    callbacks: list[OnDurable] = field(default_factory=list)


class Journal:
    """One worker session's segments; not thread-safe: use it from one event loop."""

    def __init__(self, root: Path, session: str) -> None:
        self.session = session
        self.dir = root / session
        self.segment = 0
        self._files: dict[int, IO[bytes]] = {}
        self._pending = _Pending()
        self._syncing: asyncio.Task[None] | None = None
        self._lock: IO[bytes] | None = None
        self._appended = 0  # records appended so far
        self._synced = 0  # of those, how many a finished sync took (written and acked, or failed)
        self._sync_waiters: list[asyncio.Future[None]] = []

    def open(self) -> None:
        lake.make_dirs(self.dir)
        self._lock = open(self.dir / LOCK_NAME, "ab")  # noqa: SIM115 - held for the session
        fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)

    @property
    def unsynced_records(self) -> int:
        return len(self._pending.callbacks)

    def append(self, rows: Sequence[Row], on_durable: OnDurable | None) -> None:
        """Journal the rows of one record; `on_durable` runs once they are fsynced."""
        if rows:
            self._pending.lines.setdefault(self.segment, []).append(encode_rows(rows))
        if on_durable is not None:
            self._pending.callbacks.append(on_durable)
        self._appended += 1
        if self._syncing is None or self._syncing.done():
            try:
                self._syncing = asyncio.get_running_loop().create_task(self._sync_while_pending())
            except RuntimeError:  # no loop (a script adding rows before asyncio.run): at the flush
                self._syncing = None

    def rotate(self) -> int:
        """Close the current segment (the Parquet flush takes its rows); returns its number."""
        closed = self.segment
        self.segment += 1
        return closed

    async def _sync_while_pending(self) -> None:
        while self._pending.lines or self._pending.callbacks:
            await self.sync()

    async def sync(self) -> None:
        """Write and fsync what is pending, then run the callbacks of the records it holds."""
        pending, self._pending = self._pending, _Pending()
        taken = self._appended  # every record appended before now is in `pending` or synced
        try:
            await self._write_and_ack(pending)
        finally:
            self._synced = max(self._synced, taken)
            waiters, self._sync_waiters = self._sync_waiters, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    async def _write_and_ack(self, pending: _Pending) -> None:
        if pending.lines:
            try:
                await asyncio.to_thread(self._write, pending.lines)
            except OSError as exc:  # not acked: the record is redelivered after a restart
                logger.error("journal write failed; %d records stay unacked: %s",
                             len(pending.callbacks), exc)  # fmt: skip
                return
        for callback in pending.callbacks:
            try:
                callback()
            except Exception:
                logger.exception("on_durable callback failed")

    async def settled(self) -> None:
        """Wait until every record appended so far is fsynced (and acked).

        Only those: records appended meanwhile are not waited for. Under steady intake the
        sync loop never runs dry, and waiting for it to (as this once did) held the Parquet
        flush back until the intake paused: a 20,000-job drain flushed once, at its end."""
        target = self._appended
        loop = asyncio.get_running_loop()
        while self._synced < target:
            if self._syncing is None or self._syncing.done():  # one sync loop at a time
                self._syncing = loop.create_task(self._sync_while_pending())
            waiter = loop.create_future()
            self._sync_waiters.append(waiter)
            await waiter

    def _write(self, lines: dict[int, list[bytes]]) -> None:
        new = False
        for segment, chunks in lines.items():
            f = self._files.get(segment)
            if f is None:
                f = self._files[segment] = open(self._path(segment), "ab")  # noqa: SIM115
                new = True
            f.write(b"".join(chunks))
            f.flush()
            os.fsync(f.fileno())
        if new:
            lake.fsync_dir(self.dir)

    def _path(self, segment: int) -> Path:
        return self.dir / f"{segment:06d}{SEGMENT_SUFFIX}"

    def drop(self, segments: Sequence[int]) -> None:
        """The segments' rows are in Parquet: forget them (runs in the flush's thread)."""
        for segment in segments:
            f = self._files.pop(segment, None)
            if f is not None:
                f.close()
            self._path(segment).unlink(missing_ok=True)

    def close(self) -> None:
        """Clean stop, after the final flush: nothing is left to recover."""
        for f in self._files.values():
            f.close()
        self._files.clear()
        if not any(self.dir.glob(f"*{SEGMENT_SUFFIX}")):
            shutil.rmtree(self.dir, ignore_errors=True)
        if self._lock is not None:
            self._lock.close()
            self._lock = None


def segment_still_journaled(root: Path, flush_file: Path) -> bool:
    """True while the journal segment a flush file was named after still exists.

    The segment goes once its Parquet files are in place; one left behind (a crash between the
    two, or a flush still finishing) may be written again by `recover_orphans`, under the same
    name. Compaction waits for it to go, so a flush file it folded and removed can never come
    back and be folded twice.
    """
    session, sep, segment = flush_file.stem.rpartition("-j")
    if not sep or not segment.isdigit():
        return False  # not named after a segment (a sink without a journal)
    return (root / session / f"{int(segment):06d}{SEGMENT_SUFFIX}").exists()


def recover_orphans(root: Path, lake_dir: Path) -> int:
    """Write the journals of dead workers to the lake; the number of rows recovered.

    Blocking (file I/O): run it in a thread.
    """
    if not root.is_dir():
        return 0
    recovered = 0
    for session_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        with _orphan_lock(session_dir) as orphan:
            if orphan:
                recovered += _recover_session(session_dir, lake_dir)
    return recovered


@contextlib.contextmanager
def _orphan_lock(session_dir: Path):  # type: ignore[no-untyped-def]
    """True (holding its lock) when no live worker holds the session."""
    try:
        f = open(session_dir / LOCK_NAME, "rb")  # noqa: SIM115 - never create it: a worker
        # whose directory has no lock file yet is still starting
    except OSError:
        yield False
        return
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.close()
        yield False
        return
    try:
        yield True
    finally:
        f.close()


def _recover_session(session_dir: Path, lake_dir: Path) -> int:
    count = 0
    for path in sorted(session_dir.glob(f"*{SEGMENT_SUFFIX}")):
        rows = decode_rows(path.read_bytes())
        write_segment(rows, lake_dir, segment_file_name(session_dir.name, int(path.stem)))
        count += len(rows)
        path.unlink()
    shutil.rmtree(session_dir, ignore_errors=True)
    if count:
        logger.info("journal: recovered %d rows a stopped worker had not flushed", count)
    return count


def write_segment(rows: Sequence[Row], lake_dir: Path, name: str) -> None:
    """One Parquet file per table partition, skipping the ones already in place."""
    groups: dict[tuple[str, str, object], list[Row]] = {}
    for row in rows:
        groups.setdefault((row.table, row.kind, lake.row_date(row)), []).append(row)
    for (table, kind, day), group in groups.items():
        directory = lake.partition_dir(lake_dir, table, kind, day)  # type: ignore[arg-type]
        path = directory / f"{name}.parquet"
        if path.exists():
            continue
        lake.make_dirs(directory)
        lake.write_parquet_atomically(lake.rows_to_table(group, type(group[0]).arrow_schema), path)
        lake.fsync_dir(directory)
