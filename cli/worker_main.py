"""`frugal worker`: start (or reach) the broker, create topics, run the stream workers."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable

from bus.broker import running_broker
from bus.group_limits import check_session_timeout, session_timeout_bounds
from bus.topics import ensure_topics, wait_for_group_coordinator
from cli.drain_progress import DrainProgress
from cli.progress import progress_view
from cli.runtime import settle_heap
from consumers.worker import StreamWorker
from pipeline.app import Pipeline
from pipeline.metrics import metrics_server
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
        bounds, _ = await asyncio.gather(
            session_timeout_bounds(bootstrap),
            wait_for_group_coordinator(bootstrap, config.kafka.group_id),
        )
        check_session_timeout(config.kafka.session_timeout_s, bounds)
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
