"""Reads of the lake that hold while compaction rewrites its files.

DuckLake pins a reading transaction to one snapshot, but over a SQLite catalog in WAL mode it
reads the catalog's metadata statement by statement, not inside one SQLite transaction. A
logical change (an insert, a delete) is stamped with the snapshot that made it, so a reader
pinned to an earlier snapshot still filters it out. A physical rewrite is not:

- `ducklake_merge_adjacent_files` replaces small files with one file that claims the oldest
  one's begin snapshot, so a reader pinned before the merge that lists files after it counts
  rows added after its snapshot (results counted twice beside their unfolded flush files);
- `ducklake_rewrite_data_files` drops deleted rows from a file in place, so a reader pinned
  before the delete misses them, and a reader caught half-way can list no file at all.

Measured here with DuckLake 1.5.5: a reader pinned at snapshot 4 (30 rows) counted 50 rows
after two inserts and a merge, even with `AT (VERSION => 4)`. So a read is checked after the
fact: if a snapshot after the pinned one records anything but logical changes (or the pinned
snapshot was expired meanwhile), it may have straddled a rewrite, and it runs again.
"""

from __future__ import annotations

import duckdb

# Changes that only add or end rows and files, each stamped with its own snapshot.
LOGICAL_CHANGES = (
    "schemas_created", "tables_created", "tables_altered", "tables_inserted_into",
    "tables_deleted_from", "inlined_insert", "inlined_delete", "views_created",
)  # fmt: skip


class StaleRead(Exception):
    """A read may have mixed two states of the lake (see the module's docstring)."""

    def __init__(self, snapshot: int) -> None:
        super().__init__(f"lake snapshot {snapshot} was rewritten or expired during a read")
        self.snapshot = snapshot


def pin_snapshot(con: duckdb.DuckDBPyConnection, alias: str) -> int | None:
    """The snapshot the open transaction reads from now on (call it first in a transaction)."""
    row = con.execute(f"SELECT id FROM {alias}.current_snapshot()").fetchone()
    return None if row is None else int(row[0])


def read_was_stale(con: duckdb.DuckDBPyConnection, alias: str, snapshot: int) -> bool:
    """Asked after the read's transaction ended: True when `snapshot` was expired, or a later
    snapshot rewrote files physically. A snapshot, once expired, never comes back, and every
    rewrite that committed before this question is listed by it."""
    logical = ", ".join(f"'{change}'" for change in LOGICAL_CHANGES)
    s = int(snapshot)  # inlined: binding a parameter makes DuckDB import pandas
    row = con.execute(
        f"SELECT count(*) FILTER (snapshot_id = {s}), "
        f"count(*) FILTER (snapshot_id > {s} AND NOT list_has_all([{logical}], map_keys(changes))) "
        f"FROM ducklake_snapshots('{alias}')"
    ).fetchone()
    if row is None:
        return True
    still_there, rewrites_since = row
    return not still_there or bool(rewrites_since)


def check_read(con: duckdb.DuckDBPyConnection, alias: str, snapshot: int | None) -> None:
    """Raise StaleRead if the read pinned at `snapshot` must run again."""
    if snapshot is not None and read_was_stale(con, alias, snapshot):
        raise StaleRead(snapshot)
