"""What a stream worker asks of the pipeline (consumers/pipeline_port.py), besides running
records: settle (flush, then commit: the one place answers become durable and committed), the
done set, the group's share of the providers' limits, backpressure and the worker's own figures.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from pipeline.done import DoneJobs
from pipeline.inbound import Commit
from pipeline.limits import Limits
from pipeline.metrics import PipelineMetrics
from sinks.parquet import ParquetSink

log = logging.getLogger("frugal.worker")


class WorkerPort:
    """The worker-facing half of `pipeline.app.Pipeline`, over the parts it wires up."""

    sink: ParquetSink
    done: DoneJobs
    limits: Limits
    metrics: PipelineMetrics
    status_sources: list[Callable[[], str]]

    async def settle(self, commit: Commit | None = None) -> None:
        """Flush, then commit: the one place answers become durable (their records acked) and
        the acked offsets committed. Revoke, idle drain, early flush and shutdown all come here.

        A failed flush raises and commits nothing new. A failed commit is logged, not raised:
        the offsets stay where they were, and whoever reads the records again skips the
        answered ones through the done set."""
        await self.sink.flush()
        if commit is None:
            return
        try:
            await commit()
        except Exception as error:
            log.warning("commit after flush failed (%s): the next commit covers it", error)

    async def refresh_done(self, after_current: bool = False) -> None:
        """Read which jobs the lake has answered; `after_current`: once a refresh under way ends."""
        if after_current:
            await self.done.settled()
        await self.done.refresh()

    def set_group_share(self, share: float) -> None:
        self.limits.set_group_share(share)

    def saturated(self) -> list[str]:
        return self.limits.saturated()

    @property
    def awaiting_ack(self) -> int:
        return self.sink.awaiting_ack

    @property
    def pending_records(self) -> int:
        return self.sink.pending_records

    def observe_worker(
        self,
        status: Callable[[], str],
        records_in_flight: Callable[[], int],
        intake_paused: Callable[[], bool],
    ) -> None:
        """The worker's own figures, for the status log and the metrics."""
        self.status_sources.append(status)
        self.metrics.sources.records_in_flight = records_in_flight
        self.metrics.sources.intake_paused = intake_paused
