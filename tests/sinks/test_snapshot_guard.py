"""A read that straddles a compaction's rewrite of lake files runs again (sinks/snapshot_guard.py).

DuckLake over a SQLite catalog in WAL mode pins a reader's snapshot but reads the catalog's
metadata statement by statement; a merge in between shows it rows from after its snapshot.
These tests put the merge exactly there, on a real lake, and check that the reader notices.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

import duckdb
import pytest
from support.rowkit import Rows

from pipeline.done import DoneJobs
from schemas.config import StorageConfig
from sinks import lakehouse, snapshot_guard
from sinks.catalog import query
from sinks.compaction import compact
from sinks.parquet import ParquetSink
from sinks.snapshot_guard import StaleRead

RESULTS = f"{lakehouse.ALIAS}.{lakehouse.log_table('results')}"


@pytest.fixture
async def folded(storage: StorageConfig, rows: Rows) -> StorageConfig:
    """A lake whose results table holds 4 small files (20 results), none merged yet."""
    sink = ParquetSink(storage, "w1")
    for flush in range(4):
        sink.add([rows.result(f"job-{flush}-{n}") for n in range(5)])
        await sink.flush()
        await asyncio.to_thread(compact, storage, 0.0, 3600.0)
    sink.close()
    return storage


@pytest.fixture
def writer(folded: StorageConfig) -> Iterator[duckdb.DuckDBPyConnection]:
    con = lakehouse.open_lake(folded)
    yield con
    con.close()


def copy_and_merge(writer: duckdb.DuckDBPyConnection) -> None:
    """What a fold and then a merge do to the results table: rows added, files rewritten."""
    writer.execute(f"INSERT INTO {RESULTS} SELECT * REPLACE (job_id || '-again' AS job_id, "
                   "_source || '-again' AS _source) "
                   f"FROM {RESULTS}")  # fmt: skip
    writer.execute(f"CALL ducklake_merge_adjacent_files('{lakehouse.ALIAS}')")


def count_results(con: duckdb.DuckDBPyConnection) -> int:
    (n,) = con.execute(f"SELECT count(*) FROM {RESULTS}").fetchone() or (0,)
    return int(n)


@contextlib.contextmanager
def pinned_reader(storage: StorageConfig) -> Iterator[tuple[duckdb.DuckDBPyConnection, int]]:
    """A read-only lake connection inside a transaction, and the snapshot it pinned."""
    reader = lakehouse.connect(storage, read_only=True)
    try:
        reader.execute("BEGIN TRANSACTION")
        pinned = snapshot_guard.pin_snapshot(reader, lakehouse.ALIAS)
        assert pinned is not None
        yield reader, pinned
    finally:
        reader.close()


def test_a_merge_between_pinning_and_reading_makes_the_read_stale(
    folded: StorageConfig, writer: duckdb.DuckDBPyConnection
) -> None:
    with pinned_reader(folded) as (reader, pinned):
        copy_and_merge(writer)
        count_results(reader)  # DuckLake 1.5.5 counts 40 here, though the snapshot holds 20
        reader.execute("COMMIT")

        with pytest.raises(StaleRead):
            snapshot_guard.check_read(reader, lakehouse.ALIAS, pinned)


def test_inserts_after_the_pinned_snapshot_do_not_make_a_read_stale(
    folded: StorageConfig, writer: duckdb.DuckDBPyConnection
) -> None:
    with pinned_reader(folded) as (reader, pinned):
        writer.execute(f"INSERT INTO {RESULTS} SELECT * FROM {RESULTS} LIMIT 3")
        assert count_results(reader) == 20  # a logical change after the snapshot: filtered out
        reader.execute("COMMIT")

        assert not snapshot_guard.read_was_stale(reader, lakehouse.ALIAS, pinned)


@pytest.fixture
def pins_then_merge(
    writer: duckdb.DuckDBPyConnection, monkeypatch: pytest.MonkeyPatch
) -> list[int | None]:
    """Every snapshot a read pins; a compaction lands right after the first pin."""
    pin = snapshot_guard.pin_snapshot
    pins: list[int | None] = []

    def pin_then_merge(con: duckdb.DuckDBPyConnection, alias: str) -> int | None:
        pinned = pin(con, alias)
        pins.append(pinned)
        if len(pins) == 1:
            copy_and_merge(writer)
        return pinned

    monkeypatch.setattr(snapshot_guard, "pin_snapshot", pin_then_merge)
    return pins


def test_a_query_straddling_a_merge_runs_again_and_sees_each_row_once(
    folded: StorageConfig, pins_then_merge: list[int | None]
) -> None:
    (row,) = query(folded, "SELECT count(*), count(DISTINCT job_id) FROM results_all").rows

    assert pins_then_merge, "the merge did not run"
    assert row == (40, 40)  # the second run, on the merged snapshot: every row once


async def test_done_jobs_read_straddling_a_merge_runs_again(
    folded: StorageConfig, pins_then_merge: list[int | None]
) -> None:
    done = DoneJobs(folded)
    await done.refresh()

    runs = pins_then_merge
    assert len(runs) == 2 and runs[1] != runs[0]  # read again, on the merged snapshot
    assert len(done) == 40
