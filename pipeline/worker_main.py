"""`frugal worker`: start (or reach) the broker, create topics, run the stream workers."""

from __future__ import annotations

from consumers.worker import StreamWorker
from pipeline.app import Pipeline
from pipeline.broker import running_broker
from pipeline.runtime import settle_heap
from pipeline.topics import ensure_topics, wait_for_group_coordinator
from schemas.config import Config


async def run_worker(config: Config, kinds: list[str], drain: bool) -> int:
    with running_broker(config.kafka.bootstrap) as bootstrap:
        await ensure_topics(bootstrap, config.kafka)
        await wait_for_group_coordinator(bootstrap, config.kafka.group_id)
        pipeline = Pipeline(config, bootstrap)
        worker = StreamWorker(config, bootstrap, kinds, pipeline)
        settle_heap()
        return await worker.run(drain=drain)
