"""When each lake snapshot was seen to be the current one, by this machine's compaction passes.

A reader keeps the snapshot that was current when its query began. Compaction may expire a
snapshot, and delete a flush file folded into the lake, only once no reader can still hold the
older state: once a later snapshot has been current for `compact_grace_s`. DuckLake's own
`snapshot_time` cannot tell that: it is when the committing transaction *began*, so a fold
that took seconds looks older than it is. The clock records what a pass saw: "at wall time t,
snapshot s was current". Every snapshot before s was superseded by then, and every change in
s (a fold, a merge) was visible since then.

Kept in a small file beside the flush files; passes on one machine run one at a time (the
compaction lock), so no two write it at once. Each machine keeps its own facts about a shared
catalog, which are as true there as anywhere.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

KEEP_S = 3600.0  # observations older than this are dropped (bar the newest such one)


class SnapshotClock:
    def __init__(self, path: Path) -> None:
        self.path = path

    def observe(self, snapshot: int, at: float | None = None) -> None:
        """Record that `snapshot` is the current one now (call before the pass writes)."""
        now = time.time() if at is None else at
        seen = [*self._read(), (now, snapshot)]
        old = [s for s in seen if s[0] <= now - KEEP_S]
        kept = [s for s in seen if s[0] > now - KEEP_S] + old[-1:]
        self._write(sorted(kept))

    def settled(self, grace_s: float, now: float | None = None) -> int | None:
        """The newest snapshot seen current at least `grace_s` ago: no query still running
        began before it. None when no pass saw one that long ago."""
        cutoff = (time.time() if now is None else now) - grace_s
        ids = [snapshot for at, snapshot in self._read() if at <= cutoff]
        return max(ids) if ids else None

    def _read(self) -> list[tuple[float, int]]:
        try:
            return [(float(at), int(s)) for at, s in json.loads(self.path.read_text())]
        except (OSError, ValueError, TypeError):
            return []  # none yet, or unreadable: wait for new observations

    def _write(self, seen: list[tuple[float, int]]) -> None:
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        tmp.write_text(json.dumps(seen))
        os.replace(tmp, self.path)
