"""The DuckDB catalog: views over the lake, latest-wins and dead-letter rules, concurrent use."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from datetime import timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from support.rowkit import Rows

import sinks
from pipeline.done import DoneJobs
from schemas.config import StorageConfig
from schemas.rows import Row
from sinks import catalog, lake
from sinks.catalog import SPEC_COLUMNS, ensure_catalog, query
from sinks.errors import CatalogBusy, QueryError
from sinks.parquet import ParquetSink

REPO_ROOT = Path(sinks.__file__).resolve().parents[1]
VIEWS = ("results", "usage", "dead_letters", "results_all", "usage_all", "dead_letters_all")


async def write(storage: StorageConfig, *batches: Sequence[Row]) -> None:
    """Each batch is flushed on its own, so it lands in its own files."""
    sink = ParquetSink(storage, "w1")
    for batch in batches:
        sink.add(batch)
        await sink.flush()


def scalar(storage: StorageConfig, sql: str) -> object:
    (row,) = query(storage, sql).rows
    return row[0]


@pytest.mark.parametrize("view", VIEWS)
def test_an_empty_lake_gives_empty_views_with_contract_columns_first(
    storage: StorageConfig, view: str
) -> None:
    result = query(storage, f"SELECT * FROM {view}")

    assert result.rows == []
    spec = SPEC_COLUMNS[view.removesuffix("_all")]
    assert tuple(result.columns[: len(spec)]) == spec


def test_seed_files_carry_each_table_schema_and_no_rows(storage: StorageConfig) -> None:
    ensure_catalog(storage)

    for table in ("results", "usage", "dead_letters"):
        seed = pq.read_table(lake.seed_path(storage.lake_dir, table))
        assert seed.num_rows == 0
        assert "status" in seed.schema.names or table != "dead_letters"


async def test_results_keep_the_latest_completion_per_job(
    storage: StorageConfig, rows: Rows
) -> None:
    later = rows.result("a", at=timedelta(hours=1), output='{"label": "later"}')
    earlier = rows.result("a", output='{"label": "earlier"}')
    await write(storage, [later], [earlier], [rows.result("b")])

    result = query(storage, "SELECT job_id, output FROM results ORDER BY job_id")

    assert result.rows == [("a", '{"label": "later"}'), ("b", '{"label": "bug"}')]
    assert scalar(storage, "SELECT count(*) FROM results_all") == 3


async def test_usage_keeps_one_row_per_provider_call(storage: StorageConfig, rows: Rows) -> None:
    await write(
        storage,
        [rows.usage("a", 1, outcome="server_error"), rows.usage("a", 2)],
        [rows.usage("b", 1, provider="anthropic", model="claude-haiku")],
    )

    result = query(storage, "SELECT job_id, attempt, outcome FROM usage ORDER BY ALL")

    assert result.rows == [("a", 1, "server_error"), ("a", 2, "ok"), ("b", 1, "ok")]
    assert scalar(storage, "SELECT sum(cost_usd) FROM usage") == pytest.approx(0.0003)


async def test_dead_letters_show_the_latest_row_per_job(storage: StorageConfig, rows: Rows) -> None:
    await write(
        storage,
        [rows.dead("a")],
        [rows.dead("a", at=timedelta(minutes=5), replay_count=1, error_type="timeout")],
        [rows.dead("b")],
    )

    result = query(
        storage, "SELECT job_id, error_type, replay_count, providers_tried FROM dead_letters"
    )

    assert sorted(result.rows) == [
        ("a", "timeout", 1, ["openai"]),
        ("b", "server_error", 0, ["openai"]),
    ]
    assert scalar(storage, "SELECT count(*) FROM dead_letters_all") == 3


async def test_a_later_result_clears_a_dead_letter(storage: StorageConfig, rows: Rows) -> None:
    await write(
        storage,
        [rows.dead("replayed"), rows.dead("still-dead", at=timedelta(hours=1))],
        [rows.result("replayed", at=timedelta(minutes=1))],
        # A result from before the failure does not clear it.
        [rows.result("still-dead")],
    )

    assert query(storage, "SELECT job_id FROM dead_letters").rows == [("still-dead",)]


async def test_a_resolved_row_clears_a_dead_letter_until_it_dies_again(
    storage: StorageConfig, rows: Rows
) -> None:
    await write(
        storage,
        [rows.dead("a"), rows.dead("b")],
        [rows.dead("a", at=timedelta(minutes=1), status="resolved")],
        [rows.dead("b", status="resolved")],  # same instant as its dead row: resolved wins
    )
    assert query(storage, "SELECT job_id FROM dead_letters").rows == []

    await write(storage, [rows.dead("a", at=timedelta(minutes=2), replay_count=1)])
    assert query(storage, "SELECT job_id, replay_count FROM dead_letters").rows == [("a", 1)]


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT * FROM nowhere", "Catalog Error: Table with name nowhere does not exist!"),
        ("SELEC 1", 'Parser Error: syntax error at or near "SELEC"'),
        ("CREATE TABLE t (x INTEGER)", "read-only"),
    ],
)
def test_query_errors_are_one_line_query_errors(
    storage: StorageConfig, sql: str, expected: str
) -> None:
    with pytest.raises(QueryError) as caught:
        query(storage, sql)

    assert expected in str(caught.value)
    assert "\n" not in str(caught.value)
    assert caught.value.type == "query_error"


def test_timestamps_come_back_in_utc(storage: StorageConfig) -> None:
    value = scalar(storage, "SELECT TIMESTAMPTZ '2024-05-01 14:00:00+02'")

    assert value.isoformat() == "2024-05-01T12:00:00+00:00"  # type: ignore[attr-defined]


async def test_a_moved_data_dir_keeps_working(
    storage: StorageConfig, rows: Rows, tmp_path: Path
) -> None:
    await write(storage, [rows.result("a")])
    assert scalar(storage, "SELECT count(*) FROM results") == 1

    moved = storage.model_copy(update={"data_dir": tmp_path / "moved"})
    shutil.move(storage.data_dir, moved.data_dir)

    assert scalar(moved, "SELECT count(*) FROM results") == 1
    assert scalar(moved, "SELECT lake_dir FROM _frugal_catalog") == str(moved.lake_dir.resolve())


def test_deleted_seed_files_are_restored(storage: StorageConfig) -> None:
    ensure_catalog(storage)
    shutil.rmtree(storage.lake_dir)

    assert query(storage, "SELECT count(*) FROM dead_letters").rows == [(0,)]
    assert lake.seed_path(storage.lake_dir, "dead_letters").exists()


async def test_done_jobs_come_from_the_lake(storage: StorageConfig, rows: Rows) -> None:
    done = DoneJobs(storage)
    await done.refresh()
    assert len(done) == 0

    await write(
        storage,
        [rows.result("a"), rows.result("a", at=timedelta(hours=1))],
        [rows.result("b", kind="extract"), rows.dead("c"), rows.usage("d")],
    )
    await done.refresh()

    assert "a" in done and "b" in done
    assert "c" not in done and "d" not in done and len(done) == 2
    await write(storage, [rows.result("e")])
    await done.refresh()  # only files written since the last refresh are read
    assert "e" in done and len(done) == 3
    assert not storage.catalog_path.exists()  # the catalog file was not needed


# -- other processes --------------------------------------------------------------------------

WRITER = """
import asyncio, sys
from datetime import datetime, UTC
from pathlib import Path
from schemas.config import StorageConfig
from schemas.rows import UsageRow
from sinks.catalog import ensure_catalog
from sinks.parquet import ParquetSink

async def main(data_dir, stop_file):
    storage = StorageConfig(data_dir=Path(data_dir))
    ensure_catalog(storage)
    sink = ParquetSink(storage, "writer")
    written = 0
    while not Path(stop_file).exists():
        for _ in range(10):
            sink.add([UsageRow(job_id=f"j{written}", attempt=1, kind="classify", tenant="t",
                provider="p", model="m", input_tokens=1, output_tokens=1, cached_input_tokens=0,
                cache_write_tokens=0, reasoning_tokens=0, cost_usd=0.0, latency_ms=1.0,
                outcome="ok", ts=datetime.now(UTC), worker="writer")])
            written += 1
        await sink.flush()
        print(written, flush=True)

asyncio.run(main(*sys.argv[1:]))
"""

HOLDER = """
import sys, duckdb
con = duckdb.connect(sys.argv[1], read_only=sys.argv[2] == "read_only")
print("ready", flush=True)
sys.stdin.read()
"""


def spawn(script: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", script, *args],
        cwd=REPO_ROOT,
        env={"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin"},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
        process.communicate()


def test_read_only_queries_succeed_while_another_process_writes_parquet(
    storage: StorageConfig, tmp_path: Path, processes: list[subprocess.Popen[str]]
) -> None:
    stop_file = tmp_path / "stop"
    writer = spawn(WRITER, str(storage.data_dir), str(stop_file))
    processes.append(writer)
    assert writer.stdout is not None
    first_flushed = int(writer.stdout.readline())

    counts = []
    for _ in range(20):
        flushed_before = int(writer.stdout.readline())
        count = scalar(storage, "SELECT count(*) FROM usage")
        assert isinstance(count, int) and count >= flushed_before
        counts.append(count)
    stop_file.touch()
    out, err = writer.communicate(timeout=60)

    assert writer.returncode == 0, err
    assert counts == sorted(counts)
    total = int(out.split()[-1])
    assert total > first_flushed
    assert scalar(storage, "SELECT count(*) FROM usage") == total


def test_ensure_catalog_leaves_a_current_catalog_alone_while_others_read_it(
    storage: StorageConfig, processes: list[subprocess.Popen[str]]
) -> None:
    ensure_catalog(storage)
    reader = spawn(HOLDER, str(storage.catalog_path), "read_only")
    processes.append(reader)
    assert reader.stdout is not None and reader.stdout.readline() == "ready\n"

    ensure_catalog(storage)  # cannot take the write lock, and need not

    assert query(storage, "SELECT count(*) FROM results").rows == [(0,)]


def test_a_catalog_held_by_a_writer_process_reports_busy(
    storage: StorageConfig, processes: list[subprocess.Popen[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    ensure_catalog(storage)
    monkeypatch.setattr(catalog, "_LOCK_RETRIES", 2)
    holder = spawn(HOLDER, str(storage.catalog_path), "read_write")
    processes.append(holder)
    assert holder.stdout is not None and holder.stdout.readline() == "ready\n"

    with pytest.raises(CatalogBusy):
        ensure_catalog(storage)
    with pytest.raises(QueryError, match="another process"):
        query(storage, "SELECT 1")
