"""`frugal worker`: start (or reach) the broker, create topics, run the stream workers."""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable

from consumers.worker import StreamWorker
from pipeline.app import Pipeline
from pipeline.broker import running_broker
from pipeline.drain_progress import DrainProgress
from pipeline.metrics import metrics_server
from pipeline.progress import progress_view
from pipeline.runtime import settle_heap
from pipeline.topics import ensure_topics, wait_for_group_coordinator
from schemas.config import Config


async def run_worker(
    config: Config,
    kinds: list[str],
    drain: bool,
    on_stopped: Callable[[int | None], Awaitable[None]] | None = None,
) -> int:
    """`on_stopped` runs after the workers stop, with the metrics port, while it still serves."""
    with running_broker(config.kafka.bootstrap) as bootstrap:
        await ensure_topics(bootstrap, config.kafka)
        await wait_for_group_coordinator(bootstrap, config.kafka.group_id)
        pipeline = Pipeline(config, bootstrap)
        worker = StreamWorker(config, bootstrap, kinds, pipeline)
        worker.before_ready = settle_heap  # after start-up, overlapping the group join
        if drain:
            worker.drain_follower = DrainProgress(
                progress_view("drain", sys.stderr), pipeline.metrics
            ).follow
        host, wanted = config.worker.metrics_host, config.worker.metrics_port
        with metrics_server(pipeline.metrics, host, wanted) as port:
            code = await worker.run(drain=drain)
            if on_stopped is not None:
                await on_stopped(port)
            return code
