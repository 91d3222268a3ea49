"""The stream workers: a faust app with one thin agent per job kind (plus the retry topic)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from typing import Any

import faust

from pipeline.app import InboundRecord, Pipeline
from pipeline.dead_letters import RecordOrigin
from pipeline.drain import DrainWatch
from pipeline.topics import job_topic, retry_topic
from schemas.config import Config
from schemas.jobs import decode_object

log = logging.getLogger("frugal.worker")


def build_app(config: Config, bootstrap: str) -> faust.App:
    brokers = ";".join(f"kafka://{host}" for host in bootstrap.split(","))
    return faust.App(
        config.kafka.group_id,
        broker=brokers,
        store="memory://",
        web_enabled=False,
        topic_partitions=config.kafka.partitions,
        topic_replication_factor=config.kafka.replication_factor,
        broker_commit_interval=config.kafka.commit_interval_s,
        broker_session_timeout=config.kafka.session_timeout_s,
        broker_rebalance_timeout=config.kafka.session_timeout_s,
        broker_heartbeat_interval=max(0.5, config.kafka.session_timeout_s / 5),
        stream_buffer_maxsize=config.worker.buffer_per_partition,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
    )


class StreamWorker:
    """Feeds records from faust agents into the pipeline with a bounded number in flight."""

    def __init__(
        self, config: Config, bootstrap: str, kinds: list[str], pipeline: Pipeline
    ) -> None:
        self.config = config
        self.kinds = kinds
        self.pipeline = pipeline
        self.app = build_app(config, bootstrap)
        self._slots = asyncio.Semaphore(config.worker.max_in_flight)
        self._in_flight: set[asyncio.Task[None]] = set()
        self._accepting = True
        for kind in kinds:
            self._add_agent(kind, job_topic(config.kafka, kind))
        self._add_agent("retry", retry_topic(config.kafka))

    @property
    def topics(self) -> list[str]:
        return [job_topic(self.config.kafka, k) for k in self.kinds] + [
            retry_topic(self.config.kafka)
        ]

    def _add_agent(self, kind: str, topic_name: str) -> None:
        topic = self.app.topic(topic_name, key_type=bytes, value_type=bytes, value_serializer="raw")

        async def agent(stream: faust.StreamT[Any]) -> None:
            async for event in stream.noack().events():
                if not self._accepting:
                    continue  # not acked: redelivered to whoever takes the partition next
                if kind == "retry":
                    await self._wait_until_due(event.value)
                await self._slots.acquire()
                task = asyncio.create_task(self._handle(kind, event))
                self._in_flight.add(task)
                task.add_done_callback(self._in_flight.discard)

        self.app.agent(topic, name=f"frugal-{kind}")(agent)

    async def _wait_until_due(self, value: bytes) -> None:
        with contextlib.suppress(Exception):
            due = float(decode_object(value).get("metadata", {}).get("not_before", 0))
            while self._accepting and (wait := due - time.time()) > 0:
                await asyncio.sleep(min(wait, 1.0))

    def _kind_of(self, kind: str, value: bytes) -> str:
        if kind != "retry":
            return kind
        with contextlib.suppress(Exception):
            return str(decode_object(value).get("kind", "classify"))
        return "classify"

    async def _handle(self, kind: str, event: faust.EventT[Any]) -> None:
        message = event.message
        origin = RecordOrigin(
            kind=self._kind_of(kind, message.value or b""),
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            key=message.key.decode(errors="replace") if message.key else None,
        )
        timestamp = int(message.timestamp * 1000) if message.timestamp else None
        record = InboundRecord(origin, message.value or b"", timestamp, event.ack)
        try:
            await self.pipeline.process(record)
        except Exception:  # a bug must not stop the worker; the record stays unacked
            log.exception(
                "unexpected error on %s:%s@%s", origin.topic, origin.partition, origin.offset
            )
        finally:
            self._slots.release()

    async def _finish_in_flight(self, grace_s: float) -> None:
        self._accepting = False
        if self._in_flight:
            _, pending = await asyncio.wait(set(self._in_flight), timeout=grace_s)
            for task in pending:
                task.cancel()

    async def run(self, drain: bool) -> int:
        """Run until SIGTERM/SIGINT, or (with drain) until the backlog is done; exit code."""
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        watch = DrainWatch(self.pipeline.bootstrap, self.config.kafka.group_id, self.topics)
        if drain:
            await watch.start()
            self.pipeline.produced_hook = watch.note_produced
        await self.pipeline.start()
        await self.app.start()
        waiters = [asyncio.create_task(stop.wait())]
        if drain:
            waiters.append(asyncio.create_task(watch.wait_done()))
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()
            await self._shutdown(watch if drain else None)
        return 0

    async def _shutdown(self, watch: DrainWatch | None) -> None:
        await self._finish_in_flight(self.config.worker.shutdown_grace_s)
        await self.pipeline.stop()  # final flush: acks everything durable
        with contextlib.suppress(Exception):
            await self.app.consumer.commit()
        await self.app.stop()
        if watch is not None:
            await watch.stop()
