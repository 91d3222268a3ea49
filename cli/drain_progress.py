"""`worker --drain` progress: records done of those left at start (and what they fed back)."""

from __future__ import annotations

from bus.drain import DrainWatch
from cli.progress import ProgressView, Snapshot
from pipeline.metrics import PipelineMetrics

POLL_S = 0.25  # as often as DrainWatch.wait_done looks


class DrainProgress:
    """Waits for a drain to finish, as `DrainWatch.wait_done` does, showing how far it got."""

    def __init__(
        self, view: ProgressView, metrics: PipelineMetrics, poll_s: float = POLL_S
    ) -> None:
        self._view = view
        self._metrics = metrics
        self._poll_s = poll_s
        self.last = Snapshot()

    async def follow(self, watch: DrainWatch) -> None:
        left_at_start = await watch.remaining()
        targets_at_start = sum(watch.targets.values())
        try:
            while True:
                left = await watch.remaining()
                # Records this worker fed back (documents' tasks, parked jobs) raise the targets.
                total = left_at_start + sum(watch.targets.values()) - targets_at_start
                self.last = self._snapshot(total - left, total)
                if left == 0:
                    return
                self._view.show(self.last)
                await watch.pause(self._poll_s)
        finally:
            self._view.close(self.last)

    def _snapshot(self, done: int, total: int) -> Snapshot:
        return Snapshot(
            done=done,
            total=total,
            spent_usd=self._metrics.spent_usd,
            open_batches=self._metrics.open_batches_total,
        )
