"""Compaction: closed flush files fold into the DuckLake tables; readers see each row once."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from support.rowkit import Rows

from pipeline.done import DoneJobs
from schemas.config import StorageConfig
from schemas.rows import Row
from sinks import lakehouse
from sinks.catalog import ensure_catalog, query
from sinks.compaction import compact
from sinks.parquet import ParquetSink
from sinks.snapshot_clock import SnapshotClock

KINDS = ("classify", "extract")
PEOPLE = [("acme", "ann", "triage"), ("acme", "bob", "triage"), ("globex", "cy", "summarizer")]


def flush_rows(rows: Rows, n: int, per_flush: int = 5) -> list[Row]:
    """One flush's rows: results, two calls each (the first failed), a dead letter every 4th."""
    out: list[Row] = []
    for i in range(per_flush):
        job = f"job-{n:05d}-{i}"
        kind = KINDS[i % 2]
        tenant, user, agent = PEOPLE[(n + i) % 3]
        who = {"kind": kind, "tenant": tenant, "user": user, "agent": agent, "session": f"s{n % 7}"}
        day = timedelta(days=(n + i) % 2)  # two day partitions
        out += [
            rows.result(job, at=day, **who),
            rows.usage(job, 1, outcome="server_error", ts=rows.t0 + day, **who),
            rows.usage(job, 2, ts=rows.t0 + day, cost_usd=0.0002, input_tokens=7 + i, **who),
        ]
        if i == 0 and n % 4 == 0:
            out.append(
                rows.dead(f"dead-{n:05d}", at=day, **{k: who[k] for k in ("kind", "tenant")})
            )
    return out


async def write_flushes(storage: StorageConfig, rows: Rows, start: int, count: int) -> None:
    sink = ParquetSink(storage, "w1")
    for n in range(start, start + count):
        sink.add(flush_rows(rows, n))
        await sink.flush()


def snapshot(storage: StorageConfig) -> dict[str, list[tuple[object, ...]]]:
    return {
        view: sorted(query(storage, f"SELECT * FROM {view}").rows, key=repr)
        for view in ("results", "usage", "dead_letters", "results_all", "dead_letters_all")
    }


def files_per_directory(root: Path) -> Counter[Path]:
    return Counter(p.parent for p in root.rglob("*.parquet") if p.name != "seed.parquet")


async def test_compaction_keeps_every_row_and_leaves_few_files_per_partition(
    storage: StorageConfig, rows: Rows
) -> None:
    await write_flushes(storage, rows, 0, 60)
    assert max(files_per_directory(storage.lake_dir).values()) >= 30
    before = snapshot(storage)

    await asyncio.to_thread(compact, storage, 0.0, 0.0)
    await write_flushes(storage, rows, 60, 20)  # more flushes, a second pass merges them in
    before_second = snapshot(storage)
    await asyncio.to_thread(compact, storage, 0.0, 0.0)

    assert snapshot(storage) == before_second
    assert {k: [r for r in v if r in before_second[k]] for k, v in before.items()} == before
    assert files_per_directory(storage.lake_dir) == Counter()  # every flush file folded
    lake_files = files_per_directory(storage.data_dir / "compacted")
    assert lake_files and max(lake_files.values()) <= 5, lake_files


async def test_a_query_loop_during_compaction_never_sees_a_drop_or_a_duplicate(
    storage: StorageConfig, rows: Rows
) -> None:
    await write_flushes(storage, rows, 0, 60)
    seen: list[tuple[int, int]] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def read_loop() -> None:
        while not stop.is_set():
            try:
                (row,) = query(
                    storage, "SELECT count(*), count(DISTINCT job_id) FROM results_all"
                ).rows
            except Exception as exc:
                errors.append(exc)
                return
            seen.append((int(row[0]), int(row[1])))

    reader = threading.Thread(target=read_loop)
    reader.start()
    flushes = 60
    deadline = time.monotonic() + 180
    try:
        # Workers keep writing while passes run: three rounds, and more until the reader has
        # looked often enough (a loaded machine makes its queries slow).
        while flushes < 120 or len(seen) <= 5:
            writing = asyncio.create_task(write_flushes(storage, rows, flushes, 20))
            await asyncio.to_thread(compact, storage, 0.0, 2.0)
            await writing
            flushes += 20
            assert time.monotonic() < deadline, f"only {len(seen)} reader queries"
    finally:
        stop.set()
        await asyncio.to_thread(reader.join)
    await asyncio.to_thread(compact, storage, 0.0, 0.0)

    assert errors == []
    assert len(seen) > 5
    assert all(total == distinct for total, distinct in seen), "a job id was seen twice"
    counts = [total for total, _ in seen]
    assert all(b >= a for a, b in itertools.pairwise(counts)), "a count dropped"
    assert scalar(storage, "SELECT count(*) FROM results") == flushes * 5


def scalar(storage: StorageConfig, sql: str) -> object:
    (row,) = query(storage, sql).rows
    return row[0]


SUMS_BY_GROUP = """
    SELECT CAST(ts AS DATE) AS day, tenant, "user", agent, kind, provider, model,
           count(*) AS calls, sum(input_tokens), sum(cached_input_tokens),
           sum(cache_write_tokens), sum(output_tokens), sum(reasoning_tokens),
           round(sum(cost_usd), 9)
    FROM usage GROUP BY ALL ORDER BY ALL"""
DAILY = """
    SELECT day, tenant, "user", agent, kind, provider, model, calls, input_tokens,
           cached_input_tokens, cache_write_tokens, output_tokens, reasoning_tokens,
           round(cost_usd, 9)
    FROM usage_daily ORDER BY ALL"""


async def test_usage_daily_equals_the_sums_over_usage_before_during_and_after_compaction(
    storage: StorageConfig, rows: Rows
) -> None:
    await write_flushes(storage, rows, 0, 30)
    assert query(storage, DAILY).rows == query(storage, SUMS_BY_GROUP).rows

    await asyncio.to_thread(compact, storage, 0.0, 0.0)
    await write_flushes(storage, rows, 30, 10)  # half folded, half fresh

    daily = query(storage, DAILY).rows
    assert daily == query(storage, SUMS_BY_GROUP).rows
    assert {(r[1], r[2], r[3]) for r in daily} == set(PEOPLE)
    assert scalar(storage, "SELECT DISTINCT mode FROM usage_daily") == "sync"


async def test_retention_drops_old_raw_rows_that_usage_daily_still_counts(
    tmp_path: Path, rows: Rows
) -> None:
    storage = StorageConfig(data_dir=tmp_path / "data", raw_retention_days=30)
    now = datetime.now(UTC).replace(microsecond=0)
    old, recent = now - timedelta(days=40), now - timedelta(days=1)
    sink = ParquetSink(storage, "w1")
    sink.add([rows.usage("old", ts=old), rows.result("old", completed_at=old)])
    sink.add([rows.usage("new", ts=recent), rows.result("new", completed_at=recent)])
    sink.add([rows.dead("still-dead", failed_at=old)])
    await sink.flush()
    daily_before = query(storage, DAILY).rows

    await asyncio.to_thread(compact, storage, 0.0, 0.0)

    assert query(storage, "SELECT job_id FROM usage").rows == [("new",)]
    assert query(storage, "SELECT job_id FROM results").rows == [("new",)]
    assert query(storage, DAILY).rows == daily_before
    assert (
        scalar(
            storage,
            "SELECT sum(calls) FROM usage_daily WHERE day = $d".replace(
                "$d", f"DATE '{old.date()}'"
            ),
        )
        == 1
    )
    assert query(storage, "SELECT job_id FROM dead_letters").rows == [("still-dead",)]


@pytest.mark.parametrize("column", ["user", "agent", "session"])
async def test_attribution_reaches_results_and_usage(
    storage: StorageConfig, rows: Rows, column: str
) -> None:
    await write_flushes(storage, rows, 0, 3)
    await asyncio.to_thread(compact, storage, 0.0, 0.0)
    await write_flushes(storage, rows, 3, 3)

    for table in ("results", "usage"):
        nulls = scalar(storage, f'SELECT count(*) FILTER (WHERE "{column}" IS NULL) FROM {table}')
        assert nulls == 0


async def test_done_jobs_include_results_folded_and_removed_before_a_refresh(
    storage: StorageConfig, rows: Rows
) -> None:
    done = DoneJobs(storage)
    await write_flushes(storage, rows, 0, 2)
    await done.refresh()  # read the flush files; the lake is not there yet
    assert "job-00000-0" in done and len(done) == 10

    await asyncio.to_thread(compact, storage, 0.0, 0.0)  # folds and removes those two files
    await write_flushes(storage, rows, 2, 1)
    await asyncio.to_thread(compact, storage, 0.0, 0.0)  # folded and removed before this refresh
    assert files_per_directory(storage.lake_dir) == Counter()
    await done.refresh()
    await done.refresh()  # no new lake snapshot: nothing to read again
    assert "job-00002-4" in done and len(done) == 15
    fresh = DoneJobs(storage)
    await fresh.refresh()  # a worker started after the fold: every id from the lake
    assert len(fresh) == 15


async def test_a_new_lake_is_refreshed_without_its_connection_and_a_fold_opens_it(
    storage: StorageConfig, rows: Rows
) -> None:
    """Nothing folded yet: a refresh (the first record waits for one) needs no lake connection
    (~0.15-0.3 s to open). Once a fold has written data files, the ids come from the lake."""
    ensure_catalog(storage)  # the catalog exists, as at every worker start
    done = DoneJobs(storage)
    await write_flushes(storage, rows, 0, 1)
    await done.refresh()
    assert len(done) == 5 and lakehouse.nothing_folded(storage)
    assert done._folded._con is None  # type: ignore[attr-defined]

    await asyncio.to_thread(compact, storage, 0.0, 0.0)  # folds and removes the flush file
    assert not lakehouse.nothing_folded(storage)
    fresh = DoneJobs(storage)
    await fresh.refresh()
    assert len(fresh) == 5 and fresh._folded._con is not None  # type: ignore[attr-defined]


def test_only_a_one_machine_lake_is_ever_assumed_to_have_nothing_folded(
    storage: StorageConfig,
) -> None:
    assert lakehouse.nothing_folded(storage)  # SQLite catalog, local data path, no data file
    shared = storage.model_copy(update={"catalog": "postgres:host=lake.internal dbname=lake"})
    assert not lakehouse.nothing_folded(shared)
    remote = storage.model_copy(update={"lake_url": "s3://bucket/lake"})
    assert not lakehouse.nothing_folded(remote)


async def test_a_dead_workers_journal_is_folded_once_even_if_its_files_were_written(
    storage: StorageConfig, rows: Rows
) -> None:
    """A crash between a flush's Parquet files and the unlink of their journal segment."""
    storage = storage.model_copy(update={"journal": True})
    sink = ParquetSink(storage, "dead")
    sink.add(flush_rows(rows, 0))
    await sink._journal.settled()  # type: ignore[union-attr]
    (segment,) = storage.journal_dir.glob("*/*.jsonl")
    kept = segment.read_bytes()
    await sink.flush()
    segment.write_bytes(kept)  # the process died before the unlink ...
    sink._journal._lock.close()  # type: ignore[union-attr]  # ... and so its lock went

    for _ in range(3):  # fold, remove, and again: the segment must not bring the files back
        await asyncio.to_thread(compact, storage, 0.0, 0.0)
        await DoneJobs(storage).refresh()  # a starting worker recovers orphans too

    assert not list(storage.journal_dir.glob("*/*.jsonl"))
    assert files_per_directory(storage.lake_dir) == Counter()
    assert scalar(storage, "SELECT count(*) FROM results_all") == 5
    assert scalar(storage, "SELECT count(*) FROM usage_all") == 10


async def test_a_flush_file_waits_while_its_live_worker_still_journals_its_segment(
    storage: StorageConfig, rows: Rows
) -> None:
    storage = storage.model_copy(update={"journal": True})
    sink = ParquetSink(storage, "alive")
    sink.add(flush_rows(rows, 0))
    await sink._journal.settled()  # type: ignore[union-attr]
    (segment,) = storage.journal_dir.glob("*/*.jsonl")
    kept = segment.read_bytes()
    await sink.flush()
    segment.write_bytes(kept)  # as if the flush had not dropped it yet

    await asyncio.to_thread(compact, storage, 0.0, 0.0)
    assert len(files_per_directory(storage.lake_dir)) > 0  # not folded: the worker lives

    segment.unlink()  # the flush finishes
    await asyncio.to_thread(compact, storage, 0.0, 0.0)
    assert files_per_directory(storage.lake_dir) == Counter()
    assert scalar(storage, "SELECT count(*) FROM results_all") == 5
    sink.close()


GRACE_S = 2.0


async def test_a_reader_keeps_its_snapshot_when_a_slow_commit_lands_before_a_pass(
    storage: StorageConfig, rows: Rows
) -> None:
    """DuckLake stamps a snapshot with the time its transaction began. A commit that took
    longer than the grace made the snapshot before it look superseded long ago, and a pass
    expired it from under a query that had taken it a moment before (a count dropped)."""
    await write_flushes(storage, rows, 0, 4)
    await asyncio.to_thread(compact, storage, 0.0, GRACE_S)
    writer = lakehouse.open_lake(storage)
    writer.execute("BEGIN TRANSACTION")  # a slow commit: deletes enough to rewrite a file
    writer.execute("DELETE FROM lake.results_log WHERE job_id LIKE 'job-00000-%'")
    reader = lakehouse.connect(storage, read_only=True)
    reader.execute("BEGIN TRANSACTION")
    assert reader.execute("SELECT count(*) FROM lake.results_log").fetchone() == (20,)
    time.sleep(GRACE_S + 0.5)  # not a wait: the commit takes longer than the grace
    writer.execute("COMMIT")
    writer.close()

    await asyncio.to_thread(compact, storage, 0.0, GRACE_S)

    assert reader.execute("SELECT count(*) FROM lake.results_log").fetchone() == (20,)
    reader.close()
    assert scalar(storage, "SELECT count(*) FROM results_all") == 15


async def test_a_pass_whose_settled_snapshot_another_machine_expired_still_runs(
    storage: StorageConfig, rows: Rows
) -> None:
    """Machines keep their own snapshot clocks over a shared catalog: one may expire the
    snapshot another still counts as settled."""
    await write_flushes(storage, rows, 0, 2)
    await asyncio.to_thread(compact, storage, 0.0, 0.0)
    await write_flushes(storage, rows, 2, 2)
    await asyncio.to_thread(compact, storage, 0.0, 0.0)
    clock = SnapshotClock(storage.data_dir / ".lake-snapshots.json")
    clock.observe(0, at=time.time() - 3600)  # this machine saw only the first snapshot settle

    await asyncio.to_thread(compact, storage, 0.0, 3600.0)

    assert scalar(storage, "SELECT count(*) FROM results") == 20
