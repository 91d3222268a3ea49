"""ParquetSink: atomic files per (table, kind, date), callbacks only after durability, retries."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from support.rowkit import DataFiles, Rows

from schemas.config import StorageConfig
from schemas.rows import ResultRow, UsageRow
from sinks import lake
from sinks.catalog import query
from sinks.errors import SinkWriteError
from sinks.parquet import ParquetSink


async def test_flush_writes_one_file_per_table_kind_and_date(
    storage: StorageConfig, rows: Rows, data_files: DataFiles
) -> None:
    sink = ParquetSink(storage, "w1")
    sink.add([rows.result("a"), rows.usage("a")])
    sink.add([rows.result("b"), rows.usage("b"), rows.usage("b", attempt=2)])
    sink.add([rows.result("c", kind="extract"), rows.dead("d", at=timedelta(days=1))])
    await sink.flush()

    relative = [p.relative_to(storage.lake_dir).parent.as_posix() for p in data_files()]
    assert relative == [
        "dead_letters/kind=classify/date=2024-05-02",
        "results/kind=classify/date=2024-05-01",
        "results/kind=extract/date=2024-05-01",
        "usage/kind=classify/date=2024-05-01",
    ]
    assert all(p.name.startswith("w1-") for p in data_files())
    usage = pq.read_table(data_files("usage")[0])
    assert usage.num_rows == 3
    assert usage.schema.equals(UsageRow.arrow_schema)


async def test_rows_round_trip_through_parquet(
    storage: StorageConfig, rows: Rows, data_files: DataFiles
) -> None:
    original = rows.result("a", doc_id="doc-9", cost_usd=0.25, escalations=2)
    sink = ParquetSink(storage, "w1")
    sink.add([original])
    await sink.flush()

    (path,) = data_files("results")
    (record,) = pq.read_table(path).to_pylist()
    assert ResultRow(**record) == original


async def test_flush_leaves_no_temp_files(storage: StorageConfig, rows: Rows) -> None:
    sink = ParquetSink(storage, "w1")
    for i in range(20):
        sink.add([rows.result(f"job-{i}"), rows.usage(f"job-{i}")])
    await sink.flush()

    names = [p.name for p in storage.lake_dir.rglob("*") if p.is_file()]
    assert len(names) == 2
    assert all(name.endswith(".parquet") and not name.startswith(".") for name in names)


async def test_a_reader_never_sees_a_partial_file(
    storage: StorageConfig, rows: Rows, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[bool, int, list[str]]] = []
    real_replace = os.replace

    def observing_replace(src: str | Path, dst: str | Path) -> None:
        # Just before the file appears under its real name: it is complete under the temp name
        # and nothing a reader globs for exists yet.
        visible = [p.name for p in Path(dst).parent.glob("*.parquet")]
        seen.append((Path(dst).exists(), pq.read_table(src).num_rows, visible))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", observing_replace)
    sink = ParquetSink(storage, "w1")
    sink.add([rows.result(f"job-{i}") for i in range(50)])
    await sink.flush()

    assert seen == [(False, 50, [])]


async def test_callbacks_run_in_order_after_the_files_exist(
    storage: StorageConfig, rows: Rows, data_files: DataFiles
) -> None:
    calls: list[tuple[str, int]] = []

    def note(name: str) -> Callable[[], None]:
        return lambda: calls.append((name, len(data_files())))

    sink = ParquetSink(storage, "w1")
    for name in ("a", "b", "c"):
        sink.add([rows.result(name), rows.usage(name)], note(name))
    assert calls == []

    await sink.flush()

    assert calls == [("a", 2), ("b", 2), ("c", 2)]
    assert (sink.pending_rows, sink.pending_records) == (0, 0)


async def test_records_without_rows_are_acknowledged_in_order(
    storage: StorageConfig, rows: Rows
) -> None:
    calls: list[str] = []
    sink = ParquetSink(storage, "w1")
    sink.add([], lambda: calls.append("skipped"))
    sink.add([rows.result("a")], lambda: calls.append("a"))
    sink.add([], lambda: calls.append("also skipped"))
    await sink.flush()

    assert calls == ["skipped", "a", "also skipped"]


async def test_records_added_during_a_flush_wait_for_the_next_one(
    storage: StorageConfig, rows: Rows, monkeypatch: pytest.MonkeyPatch
) -> None:
    writing, release = threading.Event(), threading.Event()
    real_write = lake.write_parquet_atomically

    def slow_write(*args: object) -> None:
        writing.set()
        release.wait(timeout=10)
        real_write(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(lake, "write_parquet_atomically", slow_write)
    calls: list[str] = []
    sink = ParquetSink(storage, "w1")
    sink.add([rows.result("first")], lambda: calls.append("first"))
    flushing = asyncio.create_task(sink.flush())
    assert await asyncio.to_thread(writing.wait, 10)

    # The loop is free while the thread writes: intake continues.
    sink.add([rows.result("second")], lambda: calls.append("second"))
    assert sink.pending_records == 2
    release.set()
    await flushing
    assert calls == ["first"]
    assert (sink.pending_rows, sink.pending_records) == (1, 1)

    await sink.flush()
    assert calls == ["first", "second"]


async def test_a_failed_write_keeps_rows_and_callbacks_for_the_next_flush(
    storage: StorageConfig, rows: Rows, data_files: DataFiles, caplog: pytest.LogCaptureFixture
) -> None:
    # A file where the table's directory should be: mkdir fails even for root.
    storage.lake_dir.mkdir(parents=True)
    blocker = storage.lake_dir / "results"
    blocker.write_text("in the way")
    calls: list[str] = []
    sink = ParquetSink(storage, "w1")
    sink.add([rows.result("a")], lambda: calls.append("a"))
    sink.add([rows.result("b")], lambda: calls.append("b"))

    with caplog.at_level(logging.ERROR, logger="sinks.parquet"), pytest.raises(SinkWriteError):
        await sink.flush()

    assert calls == []
    assert (sink.pending_rows, sink.pending_records) == (2, 2)
    assert "Parquet flush failed" in caplog.text

    blocker.unlink()
    sink.add([rows.result("c")], lambda: calls.append("c"))
    await sink.flush()

    assert calls == ["a", "b", "c"]
    (path,) = data_files("results")
    assert pq.read_table(path).column("job_id").to_pylist() == ["a", "b", "c"]


async def test_groups_written_before_a_failure_are_not_written_again(
    storage: StorageConfig, rows: Rows, data_files: DataFiles
) -> None:
    storage.lake_dir.mkdir(parents=True)
    blocker = storage.lake_dir / "usage"
    blocker.write_text("in the way")
    calls: list[str] = []
    sink = ParquetSink(storage, "w1")
    sink.add([rows.result("a"), rows.usage("a")], lambda: calls.append("a"))

    with pytest.raises(SinkWriteError):
        await sink.flush()
    assert len(data_files("results")) == 1
    assert (sink.pending_rows, calls) == (1, [])

    blocker.unlink()
    await sink.flush()

    assert calls == ["a"]
    assert len(data_files("results")) == 1
    assert len(data_files("usage")) == 1


async def test_a_failing_callback_does_not_stop_the_others(
    storage: StorageConfig, rows: Rows
) -> None:
    calls: list[str] = []

    def broken() -> None:
        raise RuntimeError("boom")

    sink = ParquetSink(storage, "w1")
    sink.add([rows.result("a")], broken)
    sink.add([rows.result("b")], lambda: calls.append("b"))
    await sink.flush()

    assert calls == ["b"]
    assert sink.pending_records == 0


async def test_date_partition_is_the_utc_date_of_the_event(
    storage: StorageConfig, rows: Rows, data_files: DataFiles
) -> None:
    late_evening_in_new_york = datetime(2024, 3, 1, 23, 30, tzinfo=timezone(timedelta(hours=-5)))
    sink = ParquetSink(storage, "w1")
    sink.add([rows.usage("a", ts=late_evening_in_new_york)])
    await sink.flush()

    (path,) = data_files("usage")
    assert path.parent.name == "date=2024-03-02"


async def test_kinds_that_are_not_path_safe_round_trip(storage: StorageConfig, rows: Rows) -> None:
    sink = ParquetSink(storage, "w1")
    sink.add([rows.result("a", kind="odd/kind name")])
    await sink.flush()

    assert query(storage, "SELECT kind FROM results").rows == [("odd/kind name",)]


async def test_pending_counts_follow_intake_and_flushes(storage: StorageConfig, rows: Rows) -> None:
    sink = ParquetSink(storage, "w1")
    sink.add([rows.result("a"), rows.usage("a"), rows.usage("a", attempt=2)])
    sink.add([])
    assert (sink.pending_rows, sink.pending_records) == (3, 2)

    await sink.flush()
    assert (sink.pending_rows, sink.pending_records) == (0, 0)


async def test_run_flushes_as_soon_as_flush_rows_are_buffered(
    storage: StorageConfig, rows: Rows
) -> None:
    storage = storage.model_copy(update={"flush_rows": 3})  # interval stays an hour
    durable = asyncio.Event()
    sink = ParquetSink(storage, "w1")
    stop = asyncio.Event()
    running = asyncio.create_task(sink.run(stop))

    sink.add([rows.result("a"), rows.usage("a")])
    sink.add([rows.result("b")], durable.set)
    await asyncio.wait_for(durable.wait(), timeout=10)

    assert sink.pending_rows == 0
    stop.set()
    await running


async def test_run_flushes_every_interval(storage: StorageConfig, rows: Rows) -> None:
    storage = storage.model_copy(update={"flush_interval_s": 0.05})
    durable = asyncio.Event()
    sink = ParquetSink(storage, "w1")
    stop = asyncio.Event()
    running = asyncio.create_task(sink.run(stop))

    sink.add([rows.result("a")], durable.set)  # one row, far below flush_rows
    await asyncio.wait_for(durable.wait(), timeout=10)

    stop.set()
    await running


async def test_run_flushes_once_more_on_stop(
    storage: StorageConfig, rows: Rows, data_files: DataFiles
) -> None:
    calls: list[str] = []
    sink = ParquetSink(storage, "w1")
    stop = asyncio.Event()
    running = asyncio.create_task(sink.run(stop))
    sink.add([rows.result("a")], lambda: calls.append("a"))

    stop.set()
    await asyncio.wait_for(running, timeout=10)

    assert calls == ["a"]
    assert len(data_files("results")) == 1


async def test_run_retries_a_failed_flush(
    storage: StorageConfig, rows: Rows, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = storage.model_copy(update={"flush_interval_s": 0.05})
    attempts: list[int] = []
    real_write = lake.write_parquet_atomically

    def fail_first(*args: object) -> None:
        attempts.append(1)
        if len(attempts) == 1:
            raise OSError("disk full")
        real_write(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(lake, "write_parquet_atomically", fail_first)
    durable = asyncio.Event()
    sink = ParquetSink(storage, "w1")
    stop = asyncio.Event()
    running = asyncio.create_task(sink.run(stop))
    sink.add([rows.result("a")], durable.set)

    await asyncio.wait_for(durable.wait(), timeout=10)

    assert len(attempts) == 2
    stop.set()
    await running


async def test_run_reports_a_failed_final_flush(
    storage: StorageConfig, rows: Rows, monkeypatch: pytest.MonkeyPatch
) -> None:
    def always_fail(*args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(lake, "write_parquet_atomically", always_fail)
    calls: list[str] = []
    sink = ParquetSink(storage, "w1")
    stop = asyncio.Event()
    stop.set()
    sink.add([rows.result("a")], lambda: calls.append("a"))

    with pytest.raises(SinkWriteError):
        await sink.run(stop)
    assert (calls, sink.pending_records) == ([], 1)


async def test_rows_that_do_not_fit_the_schema_are_quarantined_not_blocking(
    storage: StorageConfig, rows: Rows, data_files: DataFiles, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[str] = []
    sink = ParquetSink(storage, "w1")
    sink.add([rows.result("fine")], lambda: calls.append("fine"))
    sink.add([rows.result("misfit", attempts=2**40)], lambda: calls.append("misfit"))

    with caplog.at_level(logging.ERROR, logger="sinks.parquet"):
        await sink.flush()

    assert calls == ["fine", "misfit"]
    (path,) = data_files("results")
    assert pq.read_table(path).column("job_id").to_pylist() == ["fine"]
    (kept,) = (storage.data_dir / "quarantine").glob("*.jsonl")
    (line,) = kept.read_text().splitlines()
    assert json.loads(line)["row"]["job_id"] == "misfit"
    assert "do not fit" in caplog.text
