"""What a stream worker needs of the pipeline, and nothing more.

`pipeline.app.Pipeline` implements it. The worker feeds records in (`process`), hands over
partitions (`hurry`, `refresh_done`, `set_group_share`) and makes answers durable and
committed through one call, `settle`, from every place that needs it: a revoke, an idle
drain, the early flush and shutdown.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from pipeline.inbound import Commit, InboundRecord

__all__ = ["Commit", "InboundRecord", "WorkerPipeline"]

OnProduced = Callable[[str, int, int], None]


class WorkerPipeline(Protocol):
    async def start(self, on_produced: OnProduced | None = None) -> None: ...

    async def stop(self, commit: Commit | None = None) -> None: ...

    async def process(self, record: InboundRecord) -> None: ...

    async def settle(self, commit: Commit | None = None) -> None: ...

    def hurry(self, on: bool) -> None: ...

    async def refresh_done(self, after_current: bool = False) -> None: ...

    def set_group_share(self, share: float) -> None: ...

    def saturated(self) -> list[str]: ...

    @property
    def awaiting_ack(self) -> int: ...

    @property
    def pending_records(self) -> int: ...

    def observe_worker(
        self,
        status: Callable[[], str],
        records_in_flight: Callable[[], int],
        intake_paused: Callable[[], bool],
    ) -> None: ...
