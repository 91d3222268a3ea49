"""`frugal worker`: start (or reach) the broker, create topics, run the stream workers.

The group join starts before the pipeline's modules are imported (providers, the lake, Arrow:
~0.5 s of a start): Tansu holds a new group's first join for a second or more, and the imports
run in a thread meanwhile, the event loop free to answer the broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Awaitable, Callable
from types import ModuleType
from typing import TYPE_CHECKING

from bus.broker import running_broker
from bus.group_limits import check_session_timeout, session_timeout_bounds
from bus.topics import ensure_topics, wait_for_group_coordinator
from cli.progress import progress_view
from cli.runtime import settle_heap
from consumers.worker import StreamWorker
from schemas.config import Config

if TYPE_CHECKING:
    from pipeline.app import Pipeline


IMPORT_SWITCH_INTERVAL_S = 0.001


def _import_pipeline() -> ModuleType:
    """`pipeline.app`, with the rest of what `run_worker` imports after it."""
    import cli.drain_progress  # noqa: F401
    import pipeline.app
    import pipeline.metrics

    return pipeline.app


async def _joined_and_built(worker: StreamWorker, config: Config, bootstrap: str) -> Pipeline:
    """Start the group join, then import and build the pipeline while the broker holds it."""
    worker.join()
    # The imports hold the interpreter; the join's round trips (this loop and faust's consumer
    # thread) wait for it between them: hand it over every 1 ms meanwhile instead of every 5.
    switch = sys.getswitchinterval()
    sys.setswitchinterval(min(switch, IMPORT_SWITCH_INTERVAL_S))
    try:
        app = await asyncio.to_thread(_import_pipeline)
        pipeline: Pipeline = app.Pipeline(config, bootstrap)
    except BaseException:
        await worker.abandon_join()
        raise
    finally:
        sys.setswitchinterval(switch)
    worker.attach(pipeline)
    return pipeline


async def run_worker(
    config: Config,
    kinds: list[str],
    drain: bool,
    on_stopped: Callable[[int | None], Awaitable[None]] | None = None,
    show_progress: bool = True,
) -> int:
    """`on_stopped` runs after the workers stop, with the metrics port, while it still serves;
    `show_progress` draws the drain's progress on stderr."""
    with running_broker(config.kafka.bootstrap) as bootstrap:
        await ensure_topics(bootstrap, config.kafka)
        bounds, _ = await asyncio.gather(
            session_timeout_bounds(bootstrap),
            wait_for_group_coordinator(bootstrap, config.kafka.group_id),
        )
        check_session_timeout(config.kafka.session_timeout_s, bounds)
        worker = StreamWorker(config, bootstrap, kinds)
        pipeline = await _joined_and_built(worker, config, bootstrap)
        from cli.drain_progress import DrainProgress
        from pipeline.metrics import metrics_server

        worker.before_ready = settle_heap  # after start-up, overlapping the group join
        if drain and show_progress:
            worker.drain_follower = DrainProgress(
                progress_view("drain", sys.stderr), pipeline.metrics
            ).follow
        host, wanted = config.worker.metrics_host, config.worker.metrics_port
        with contextlib.ExitStack() as serving:
            try:
                port = serving.enter_context(metrics_server(pipeline.metrics, host, wanted))
            except BaseException:
                await worker.abandon_join()
                raise
            code = await worker.run(drain=drain)
            if on_stopped is not None:
                await on_stopped(port)
            return code
