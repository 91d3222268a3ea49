"""Compaction: fold closed flush files into the DuckLake tables, merge, expire, apply retention.

One transaction folds a set of flush files: their rows go into the lake tables, their usage into
`usage_daily_parts`, and their paths into `folded_files`. Readers skip a flush file as soon as
its path is in `folded_files` (same snapshot), so they see each row once, before and after. A
folded file is deleted only `compact_grace_s` later, so a reader that listed it still finds it.
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb

from schemas.config import StorageConfig
from schemas.rows import TABLE_ROWS
from sinks import lake, lakehouse
from sinks.errors import QueryError
from sinks.journal import recover_orphans, segment_still_journaled
from sinks.local_lock import local_lock
from sinks.snapshot_clock import SnapshotClock

logger = logging.getLogger(__name__)
L = lakehouse.ALIAS


@dataclass
class CompactionReport:
    folded_files: dict[str, int] = field(default_factory=dict)  # table -> flush files folded
    deleted_flush_files: int = 0
    retention_cutoff: datetime | None = None
    seconds: float = 0.0

    def line(self) -> str:
        folded = ", ".join(f"{t} {n}" for t, n in self.folded_files.items() if n) or "nothing"
        return (
            f"compacted in {self.seconds:.2f}s: folded {folded}; "
            f"{self.deleted_flush_files} flush files removed"
        )


def compact(
    storage: StorageConfig, min_age_s: float | None = None, grace_s: float | None = None
) -> CompactionReport:
    """One compaction pass; safe beside running workers and readers (one pass at a time).

    Each step is its own transaction, so a pass that meets a busy catalog is simply re-run.
    """
    started = time.monotonic()
    min_age = storage.compact_after_s if min_age_s is None else min_age_s
    grace = storage.compact_grace_s if grace_s is None else grace_s
    lake.ensure_seeds(storage.lake_dir.resolve())
    # Flush files are local to a machine: one local lock keeps two passes from folding twice.
    with local_lock(storage.data_dir, ".compact.lock"):
        for attempt in range(_BUSY_RETRIES):
            try:
                report = _one_pass(storage, min_age, grace)
                break
            except (duckdb.Error, QueryError) as exc:
                busy = "locked" in str(exc) or "failed to commit" in str(exc).lower()
                if not busy or attempt == _BUSY_RETRIES - 1:
                    if isinstance(exc, QueryError):
                        raise
                    message = lakehouse._scrub(exc, storage)
                    raise QueryError(f"compaction failed: {message}") from exc
                time.sleep(min(1.0, 0.05 * 2**attempt))
    report.seconds = time.monotonic() - started
    return report


_BUSY_RETRIES = 10
REMEMBER_REMOVED_S = 600.0


def _one_pass(storage: StorageConfig, min_age: float, grace: float) -> CompactionReport:
    report = CompactionReport()
    # A dead worker's journal becomes flush files first, so its rows are folded like any other.
    recover_orphans(storage.journal_dir, storage.lake_dir)
    con = lakehouse.open_lake(storage)
    try:
        clock = SnapshotClock(storage.data_dir / ".lake-snapshots.json")
        clock.observe(current_snapshot(con))
        report.folded_files = fold_flush_files(con, storage, min_age)
        report.retention_cutoff = apply_retention(con, storage)
        merge_small_files(con)
        clock.observe(current_snapshot(con))
        settled = clock.settled(grace)
        if settled is not None:  # another machine may have expired it already, seeing later
            settled = max(settled, oldest_snapshot(con))
        expire_and_clean(con, grace, settled)
        report.deleted_flush_files = delete_folded_files(con, settled, grace)
    finally:
        con.close()
    return report


def closed_flush_files(storage: StorageConfig, table: str, min_age_s: float) -> list[str]:
    """Flush files of a table at least `min_age_s` old, oldest name first; not the seeds, nor
    files whose journal segment is still there (see `segment_still_journaled`)."""
    newest = time.time() - min_age_s
    seed = str(lake.seed_path(storage.lake_dir.resolve(), table))
    found = []
    for path in sorted(glob.glob(lake.table_glob(storage.lake_dir, table))):
        if path == seed or segment_still_journaled(storage.journal_dir, Path(path)):
            continue
        with contextlib.suppress(FileNotFoundError):
            if os.stat(path).st_mtime <= newest:
                found.append(path)
    return found


def fold_flush_files(
    con: duckdb.DuckDBPyConnection, storage: StorageConfig, min_age_s: float
) -> dict[str, int]:
    """Move the rows of closed flush files into the lake, all tables in one transaction."""
    folded = {r[0] for r in con.execute(f"SELECT path FROM {L}.{lakehouse.FOLDED}").fetchall()}
    batches = {
        table: [p for p in closed_flush_files(storage, table, min_age_s) if p not in folded]
        for table in TABLE_ROWS
    }
    if not any(batches.values()):
        return {table: 0 for table in TABLE_ROWS}
    sources: dict[str, str] = {}
    for table, files in batches.items():
        if files:  # read each file once: into a temporary table, then out of it
            con.execute(f"CREATE OR REPLACE TEMP TABLE _fold_{table} AS "
                        f"{_source_sql(storage, table, files)}")  # fmt: skip
            sources[table] = f"SELECT * FROM _fold_{table}"
            lakehouse.add_missing_columns(con, table, sources[table])
    con.execute("BEGIN TRANSACTION")
    try:
        for table, source in sources.items():
            con.execute(f"INSERT INTO {L}.{lakehouse.log_table(table)} BY NAME {source}")
        if "usage" in sources:
            con.execute(f"INSERT INTO {L}.{lakehouse.DAILY_PARTS} BY NAME "
                        f"{daily_sums_sql(con, sources['usage'])}")  # fmt: skip
        paths = [p for files in batches.values() for p in files]
        con.execute(
            f"INSERT INTO {L}.{lakehouse.FOLDED} SELECT unnest($paths), now(), NULL",
            {"paths": paths},
        )
        con.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(duckdb.Error):
            con.execute("ROLLBACK")
        raise
    finally:
        for table in sources:
            con.execute(f"DROP TABLE IF EXISTS _fold_{table}")
    return {table: len(files) for table, files in batches.items()}


def _source_sql(storage: StorageConfig, table: str, files: list[str]) -> str:
    """The flush files' rows; the (empty) seed file makes every current column present."""
    seed = str(lake.seed_path(storage.lake_dir.resolve(), table))
    paths = ", ".join(f"'{lakehouse._sql_text(p)}'" for p in [seed, *files])
    return (
        f"SELECT * EXCLUDE (filename), filename AS _source "
        f"FROM read_parquet([{paths}], hive_partitioning = false, union_by_name = true, filename = true)"
    )


def mode_expression(columns: set[str]) -> str:
    """Usage rows without a `mode` (written before batch APIs) are synchronous calls."""
    return "coalesce(mode, 'sync')" if "mode" in columns else "'sync'"


def daily_sums_sql(con: duckdb.DuckDBPyConnection, usage_source: str) -> str:
    columns = {r[0] for r in con.execute(f"DESCRIBE {usage_source}").fetchall()}
    return daily_sums_over(f"({usage_source})", columns)


def daily_sums_over(relation: str, columns: set[str]) -> str:
    """`usage_daily` sums over a relation of usage rows, grouped by its keys."""
    sums = ", ".join(
        "count(*) AS calls" if s == "calls" else f"sum({s}) AS {s}" for s in lakehouse.DAILY_SUMS
    )
    return (
        f'SELECT CAST(ts AS DATE) AS day, tenant, "user", agent, kind, provider, model, '
        f"{mode_expression(columns)} AS mode, {sums} FROM {relation} AS u GROUP BY ALL"
    )


def apply_retention(con: duckdb.DuckDBPyConnection, storage: StorageConfig) -> datetime | None:
    """Drop raw usage and results rows past retention; only folded rows (in the daily sums)."""
    if storage.raw_retention_days is None:
        return None
    cutoff = datetime.now(UTC) - timedelta(days=storage.raw_retention_days)
    con.execute("BEGIN TRANSACTION")
    con.execute(f"DELETE FROM {L}.{lakehouse.log_table('usage')} WHERE ts < $c", {"c": cutoff})
    con.execute(
        f"DELETE FROM {L}.{lakehouse.log_table('results')} WHERE completed_at < $c", {"c": cutoff}
    )
    con.execute("COMMIT")
    return cutoff


def merge_small_files(con: duckdb.DuckDBPyConnection) -> bool:
    """Merge small lake files per partition, once a partition holds more than
    MAX_FILES_PER_PARTITION (data and delete files); True if it ran.

    Merging rewrites files physically, and every reader whose read straddles that runs again
    (sinks/snapshot_guard.py): so it runs only when needed, not on every pass.
    """
    if not any(
        _files_per_partition(con, table) > MAX_FILES_PER_PARTITION for table in _LAKE_TABLES
    ):
        return False
    # Files that are mostly deletions (retention, forgotten flush-file paths) are rewritten
    # first, so that merging can then take them in.
    con.execute(f"CALL ducklake_rewrite_data_files('{L}', delete_threshold => 0.1)")
    con.execute(f"CALL ducklake_merge_adjacent_files('{L}')")
    return True


MAX_FILES_PER_PARTITION = 5
_LAKE_TABLES = (
    *(lakehouse.log_table(t) for t in TABLE_ROWS), lakehouse.DAILY_PARTS, lakehouse.FOLDED,
)  # fmt: skip


def _files_per_partition(con: duckdb.DuckDBPyConnection, table: str) -> int:
    """The most files (data plus delete files) any one partition directory of `table` holds."""
    row = con.execute(
        "SELECT max(n) FROM (SELECT count(*) + count(delete_file) AS n "
        f"FROM ducklake_list_files('{L}', '{table}') GROUP BY parse_dirpath(data_file))"
    ).fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def expire_and_clean(con: duckdb.DuckDBPyConnection, grace_s: float, settled: int | None) -> None:
    """Expire the snapshots before `settled` (sinks/snapshot_clock.py), then delete the lake
    files no snapshot left needs, `grace_s` after they were dropped."""
    if settled is not None:
        ids = con.execute(
            f"SELECT snapshot_id FROM ducklake_snapshots('{L}') WHERE snapshot_id < $s",
            {"s": settled},
        ).fetchall()
        if ids:
            versions = [r[0] for r in ids]
            con.execute(f"CALL ducklake_expire_snapshots('{L}', versions => $v)", {"v": versions})
    older = f"now() - to_microseconds({int(grace_s * 1e6)})"
    con.execute(f"CALL ducklake_cleanup_old_files('{L}', older_than => {older})")


def oldest_snapshot(con: duckdb.DuckDBPyConnection) -> int:
    row = con.execute(f"SELECT min(snapshot_id) FROM ducklake_snapshots('{L}')").fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def current_snapshot(con: duckdb.DuckDBPyConnection) -> int:
    row = con.execute(f"SELECT id FROM {L}.current_snapshot()").fetchone()
    return int(row[0]) if row else 0


def delete_folded_files(con: duckdb.DuckDBPyConnection, settled: int | None, grace_s: float) -> int:
    """Remove flush files already folded in the `settled` snapshot (every reader has seen them
    folded since); forget a path long after that.

    A reader that listed a file before it was removed (and read it, or its schema, then) looks
    its path up in `folded_files` to skip it: so a path is remembered for REMEMBER_REMOVED_S
    (a reader slower than that between listing files and reading the catalog is not expected).
    """
    if settled is None:
        return 0
    paths = [
        r[0]
        for r in con.execute(
            f"SELECT path FROM {L}.{lakehouse.FOLDED} WHERE removed_at IS NULL AND path IN "
            f"(SELECT path FROM {L}.{lakehouse.FOLDED} AT (VERSION => {int(settled)}))"
        ).fetchall()
    ]
    for path in paths:
        Path(path).unlink(missing_ok=True)
    forget = f"now() - to_microseconds({int(max(grace_s, REMEMBER_REMOVED_S) * 1e6)})"
    con.execute("BEGIN TRANSACTION")
    con.execute(f"DELETE FROM {L}.{lakehouse.FOLDED} WHERE removed_at <= {forget}")
    if paths:
        con.execute(
            f"UPDATE {L}.{lakehouse.FOLDED} SET removed_at = now() "
            f"WHERE path IN (SELECT unnest($p))",
            {"p": paths},
        )
    con.execute("COMMIT")
    return len(paths)
