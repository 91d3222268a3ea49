"""The sink's journal: records are acked once their rows are fsynced, and a dead worker's
journal reaches the lake exactly once."""

from __future__ import annotations

import asyncio
import fcntl
from pathlib import Path

import pyarrow.parquet as pq
from support.rowkit import DataFiles, Rows

from schemas.config import StorageConfig
from sinks.journal import LOCK_NAME, recover_orphans
from sinks.parquet import ParquetSink


def journaled(storage: StorageConfig) -> StorageConfig:
    return storage.model_copy(update={"journal": True})


def segments(storage: StorageConfig) -> list[Path]:
    return sorted(storage.journal_dir.glob("*/*.jsonl"))


def job_ids(files: list[Path]) -> list[str]:
    return sorted(j for f in files for j in pq.read_table(f).column("job_id").to_pylist())


async def test_a_record_is_acked_once_its_rows_are_fsynced_not_at_the_flush(
    storage: StorageConfig, rows: Rows, data_files: DataFiles
) -> None:
    storage = journaled(storage)
    acked: list[str] = []
    sink = ParquetSink(storage, "w1")
    sink.add([rows.result("a"), rows.usage("a")], lambda: acked.append("a"))
    sink.add([], lambda: acked.append("b"))  # a record with no rows is acked in order too
    assert acked == []

    await sink._journal.settled()  # type: ignore[union-attr]

    assert acked == ["a", "b"]
    assert data_files() == []  # nothing in Parquet yet: the journal holds the rows
    assert len(segments(storage)) == 1


async def test_a_flush_writes_the_segment_to_parquet_and_drops_it(
    storage: StorageConfig, rows: Rows, data_files: DataFiles
) -> None:
    storage = journaled(storage)
    sink = ParquetSink(storage, "w1")
    sink.add([rows.result("a")], None)
    await sink.flush()
    assert job_ids(data_files("results")) == ["a"]
    assert segments(storage) == []
    sink.close()
    assert not any(storage.journal_dir.iterdir())  # a clean stop leaves nothing to recover


async def test_a_flush_under_steady_intake_waits_only_for_the_records_before_it(
    storage: StorageConfig, rows: Rows, data_files: DataFiles
) -> None:
    """Records keep arriving while the flush runs (the journal's sync never runs dry): the
    flush still ends, with the rows added before it, while the intake goes on."""
    storage = journaled(storage)
    sink = ParquetSink(storage, "w1")
    for i in range(50):
        sink.add([rows.result(f"before-{i}")], None)
    stop = asyncio.Event()
    added = 0

    async def steady_intake() -> None:
        nonlocal added
        while not stop.is_set():
            sink.add([rows.result(f"during-{added}")], None)
            added += 1
            await asyncio.sleep(0)

    intake = asyncio.create_task(steady_intake())
    try:
        await asyncio.wait_for(sink.flush(), timeout=30)
        assert not intake.done() and added > 0  # the flush ended while records kept coming
    finally:
        stop.set()
        await intake
    written = job_ids(data_files("results"))
    assert [j for j in written if j.startswith("before-")] == sorted(
        f"before-{i}" for i in range(50)
    )
    await sink.flush()
    assert len(job_ids(data_files("results"))) == 50 + added
    sink.close()


async def test_a_dead_workers_journal_reaches_the_lake_once(
    storage: StorageConfig, rows: Rows, data_files: DataFiles
) -> None:
    storage = journaled(storage)
    dead = ParquetSink(storage, "dead")
    dead.add([rows.result("a"), rows.usage("a")], None)
    dead.add([rows.result("b")], None)
    await dead._journal.settled()  # type: ignore[union-attr]
    assert recover_orphans(storage.journal_dir, storage.lake_dir) == 0  # alive: its lock holds
    dead._journal._lock.close()  # type: ignore[union-attr]  # what kill -9 does to the lock

    assert recover_orphans(storage.journal_dir, storage.lake_dir) == 3
    assert recover_orphans(storage.journal_dir, storage.lake_dir) == 0
    assert job_ids(data_files("results")) == ["a", "b"]
    assert job_ids(data_files("usage")) == ["a"]
    assert not any(storage.journal_dir.iterdir())


async def test_a_segment_already_in_parquet_is_not_written_twice(
    storage: StorageConfig, rows: Rows, data_files: DataFiles
) -> None:
    """A crash between writing a segment's files and deleting the segment."""
    storage = journaled(storage)
    sink = ParquetSink(storage, "w1")
    sink.add([rows.result("a")], None)
    await sink._journal.settled()  # type: ignore[union-attr]
    (segment,) = segments(storage)
    kept = segment.read_bytes()
    await sink.flush()
    segment.write_bytes(kept)  # as if the process died before the unlink
    sink._journal._lock.close()  # type: ignore[union-attr]

    recover_orphans(storage.journal_dir, storage.lake_dir)

    assert job_ids(data_files("results")) == ["a"]


async def test_a_line_cut_short_by_a_crash_is_skipped(
    storage: StorageConfig, rows: Rows, data_files: DataFiles
) -> None:
    storage = journaled(storage)
    sink = ParquetSink(storage, "w1")
    sink.add([rows.result("a")], None)
    await sink._journal.settled()  # type: ignore[union-attr]
    (segment,) = segments(storage)
    with segment.open("ab") as f:
        f.write(b'{"table": "results", "row": {"job_id": "b", "ki')
    lock = segment.parent / LOCK_NAME
    sink._journal._lock.close()  # type: ignore[union-attr]
    with lock.open("ab") as f:  # nobody holds it now
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)

    assert recover_orphans(storage.journal_dir, storage.lake_dir) == 1
    assert job_ids(data_files("results")) == ["a"]
