"""Job ids that already have a durable result: never pay a provider for them again.

Loaded from the lake at start and topped up on every rebalance (partitions taken over from a
worker that died may hold jobs it answered but never committed: the journals it left are written
to the lake first). Only new files are read.
"""

from __future__ import annotations

import asyncio
import glob

import pyarrow.parquet as pq

from schemas.config import StorageConfig
from sinks import lake, lakehouse
from sinks.journal import recover_orphans


class DoneJobs:
    """A set of job ids, plus the result files already read into it."""

    def __init__(self, storage: StorageConfig) -> None:
        self._storage = storage
        self._ids: set[str] = set()
        self._files_read: set[str] = set()
        self._refreshing: asyncio.Task[None] | None = None
        self._folded = lakehouse.FoldedJobIds(storage)

    def __contains__(self, job_id: object) -> bool:
        return job_id in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def warm(self) -> None:
        """Open the lake connection folded job ids are read through (~0.15-0.3 s; a thread)."""
        self._folded.warm()

    def add(self, job_id: str) -> None:
        self._ids.add(job_id)

    def _read_new_files(self) -> set[str]:
        """Runs in a thread: job ids of result files not read before."""
        # A worker that died (kill -9) may have answered jobs that are only in its journal.
        recover_orphans(self._storage.journal_dir, self._storage.lake_dir)
        found: set[str] = set()
        for path in sorted(glob.glob(lake.table_glob(self._storage.lake_dir, "results"))):
            if path in self._files_read:
                continue
            try:
                table = pq.read_table(path, columns=["job_id"])
            except FileNotFoundError:
                continue  # folded into the lake meanwhile: read below
            found.update(j for j in table.column("job_id").to_pylist() if j is not None)
            self._files_read.add(path)
        # After the files: one folded between the listing and now is in the lake already.
        found |= self._folded.read(self._files_read)
        return found

    async def refresh(self) -> None:
        """Read result files written since the last refresh (by any worker)."""
        if self._refreshing is None or self._refreshing.done():
            self._refreshing = asyncio.create_task(self._refresh())
        await asyncio.shield(self._refreshing)

    async def _refresh(self) -> None:
        self._ids |= await asyncio.to_thread(self._read_new_files)

    async def settled(self) -> None:
        """Wait for a refresh in progress, so a check never misses a taken-over partition's jobs."""
        if self._refreshing is not None and not self._refreshing.done():
            await asyncio.shield(self._refreshing)
