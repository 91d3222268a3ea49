"""The stream workers: a faust app with one thin agent per job kind (plus the retry topic)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections import defaultdict
from collections.abc import Callable, Coroutine
from typing import Any

import faust

from bus.drain import DrainWatch
from bus.topics import batches_topic, job_topic, retry_topic
from consumers import delivery, offsets, refetch
from consumers.faust_import import NoHttpClient
from consumers.handover import PartitionHandover
from consumers.intake import IntakeGate
from consumers.pipeline_port import WorkerPipeline
from consumers.quick_start import QuickTableManager
from pipeline import claims
from pipeline.inbound import InboundRecord, RecordOrigin
from schemas.config import Config
from sinks.errors import SinkWriteError

log = logging.getLogger("frugal.worker")
RETRY_POLL_S = 0.25  # how often a wait for a parked record checks for shutdown and rebalance
SHUTDOWN_RESERVE_S = 5.0  # of the grace period, kept for flushing, committing and leaving
ABANDON_START_WAIT_S = 10.0  # a failed start lets faust's own start finish this long at most
DRAIN_SETTLE_S = 0.05  # --drain: how soon an idle worker makes its answers durable and commits


def _once(fn: Callable[[], object]) -> Callable[[], None]:
    done = False

    def call() -> None:
        nonlocal done
        if not done:
            done = True
            fn()

    return call


def _failed(future: asyncio.Future[None]) -> bool:
    return future.done() and (future.cancelled() or future.exception() is not None)


def parked_until(value: bytes) -> float:
    """When a record on the retry topic is due (epoch seconds); now if it does not say."""
    from schemas.jobs import decode_object  # here: the worker joins its group before this import

    with contextlib.suppress(Exception):
        parked = decode_object(value).get("parked") or {}
        return float(parked.get("not_before", 0))
    return 0.0


def build_app(config: Config, bootstrap: str) -> faust.App:
    offsets.install()  # never commit past a record in flight (faust's own check is off by one)
    delivery.install()  # hand records to the streams without four tasks per record
    refetch.install()  # read records faust fetched and dropped again, not at the next rebalance
    brokers = ";".join(f"kafka://{host}" for host in bootstrap.split(","))
    datadir = config.storage.data_dir / "faust"  # faust's own files, not "<group>-data" in the cwd
    datadir.mkdir(parents=True, exist_ok=True)
    return faust.App(
        config.kafka.group_id,
        broker=brokers,
        store="memory://",
        datadir=str(datadir),
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
        # Records are acked only once durable; on revoke and stop, StreamWorker finishes (or
        # parks) its work in flight itself, within a bound, instead of faust waiting forever.
        stream_wait_empty=False,
        TableManager=QuickTableManager,  # no tables: join the group without faust's 1 s sleep
        Monitor=delivery.QuietMonitor,  # faust's per-record stats: nothing reads them
        HttpClient=NoHttpClient,  # never used; its default would import aiohttp (~0.1 s)
    )


class StreamWorker(PartitionHandover):
    """Feeds records from faust agents into the pipeline with a bounded number in flight."""

    def __init__(
        self,
        config: Config,
        bootstrap: str,
        kinds: list[str],
        pipeline: WorkerPipeline | None = None,
    ) -> None:
        """Without `pipeline`, `attach` one before `run`: the group join (`join`) may begin
        meanwhile."""
        self.config = config
        self.bootstrap = bootstrap
        self.kinds = kinds
        self.app = build_app(config, bootstrap)
        self._joining: asyncio.Task[None] | None = None
        self._slots = asyncio.Semaphore(config.worker.max_in_flight)
        self._in_flight: dict[asyncio.Task[None], claims.Claim] = {}
        # Bumped when a partition is revoked: ends the claims of the records read from it.
        self._epochs: defaultdict[tuple[str, int], int] = defaultdict(int)
        self._revoking = 0
        self._known_generation: int | None = None  # whose answers the done set has read
        self._learning: tuple[int | None, asyncio.Future[None]] | None = None  # its refresh
        # Records left unacked for the partition's next owner, kept alive until the next
        # assignment: faust tracks unacked records in a WeakSet, and a record dropped from it
        # would let this generation's commit pass it (consumers/offsets.py).
        self._left: list[Any] = []
        self._flush_at = max(1, config.worker.max_in_flight // 2)
        self._early_flush: asyncio.Task[None] | None = None
        self._accepting = True
        self._ready = asyncio.Event()  # set once the pipeline has started
        self._drain: DrainWatch | None = None  # --drain: told of each commit made here
        # --drain: waits for the drain in place of DrainWatch.wait_done (e.g. showing progress).
        self.drain_follower: Callable[[DrainWatch], Coroutine[Any, Any, None]] | None = None
        # Runs once the pipeline has started, before the first record (e.g. settling the heap).
        self.before_ready: Callable[[], None] | None = None
        for kind in kinds:
            self._add_agent(kind, job_topic(config.kafka, kind))
        self._add_agent("retry", retry_topic(config.kafka))
        self._add_agent("batches", batches_topic(config.kafka))  # submitted provider batches
        # faust's signal stubs do not admit bound async methods, which it supports.
        self.app.on_partitions_revoked.connect(self._on_partitions_revoked)  # type: ignore[arg-type]
        self.app.on_partitions_assigned.connect(self._on_partitions_assigned)  # type: ignore[arg-type]
        if pipeline is not None:
            self.attach(pipeline)

    def attach(self, pipeline: WorkerPipeline) -> None:
        """The pipeline records go to (once it has started: `run`)."""
        self.pipeline = pipeline
        self.intake = IntakeGate(
            lambda: self.app.consumer,
            self.topics,
            self.config.worker.max_in_flight,
            pipeline.saturated,
        )
        pipeline.observe_worker(
            self.intake.status,
            records_in_flight=lambda: len(self._in_flight),
            intake_paused=lambda: bool(self.intake.paused),
        )
        self._on_attached()

    def join(self) -> asyncio.Task[None]:
        """Start joining the consumer group (faust's start), once; records wait at the agents
        until `run` has started the pipeline."""
        if self._joining is None:
            self._joining = asyncio.create_task(self.app.start())
        return self._joining

    async def abandon_join(self) -> None:
        """Start-up failed: leave the group (nothing was taken yet).

        faust's start is let finish first (bounded): cancelled midway, its consumer thread is
        not stopped by `app.stop` and outlives the event loop, dying with a traceback when it
        reports its shutdown to the closed loop."""
        joining = self._joining
        if joining is not None:
            await asyncio.wait({joining}, timeout=ABANDON_START_WAIT_S)
            if not joining.cancel() and not joining.cancelled():  # done: its error is moot
                joining.exception()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.app.stop(), self.config.worker.shutdown_grace_s)

    @property
    def topics(self) -> list[str]:
        return [job_topic(self.config.kafka, k) for k in self.kinds] + [
            retry_topic(self.config.kafka),
            batches_topic(self.config.kafka),
        ]

    def _add_agent(self, kind: str, topic_name: str) -> None:
        topic = self.app.topic(topic_name, key_type=bytes, value_type=bytes, value_serializer="raw")

        async def agent(stream: faust.StreamT[Any]) -> None:
            # Each record runs in its own task: one waiting out a backoff holds up no other.
            # noack: offsets are acked by hand once durable (StreamT's stub omits noack).
            manual: faust.Stream[Any] = stream.noack()  # type: ignore[attr-defined]
            await self._ready.wait()  # the group join and the pipeline start side by side
            async for event in manual.events():
                if offsets.already_taken(self.app.consumer, event.message):
                    continue  # read again by a seek back to a hole: answered or in flight
                await self._know_what_is_done(event.message.generation_id)
                if kind == "retry" and not await self._wait_until_due(event):
                    self._leave(event)
                    continue
                await self._slots.acquire()
                if not self._still_ours(event):
                    self._slots.release()
                    self.intake.update(len(self._in_flight))  # closed: keep fetching stopped
                    self._leave(event)
                    continue
                claim = self._claim(event)
                task = asyncio.create_task(self._handle(kind, event, claim))
                self._in_flight[task] = claim
                task.add_done_callback(self._record_done)
                self.intake.update(len(self._in_flight))

        self.app.agent(topic, name=f"frugal-{kind}")(agent)

    async def _know_what_is_done(self, generation: int | None) -> None:
        """Before the first record of a generation, read what the partitions' last owners
        answered. faust may resume fetching before the on_partitions_assigned handler starts
        its refresh, and a refresh begun before the rebalance may miss the files the last
        owner flushed while handing over: either way a job answered but not committed would
        be paid for again."""
        if generation == self._known_generation:
            return
        await asyncio.shield(self._refresh_for(generation))
        self._known_generation = generation

    def _refresh_for(self, generation: int | None) -> asyncio.Future[None]:
        """One refresh per generation, shared by the first records of every agent (they arrive
        together: one after another, the later ones waited for two refreshes, ~60 ms each)."""
        current = self._learning
        if current is not None and current[0] == generation and not _failed(current[1]):
            return current[1]
        # after_current: one begun before the rebalance is too early
        refresh = asyncio.ensure_future(self.pipeline.refresh_done(after_current=True))
        self._learning = (generation, refresh)
        return refresh

    def _record_done(self, task: asyncio.Task[None]) -> None:
        self._in_flight.pop(task, None)
        self.intake.update(len(self._in_flight))

    def _still_ours(self, event: faust.EventT[Any]) -> bool:
        """Not shutting down, and no rebalance since the record was fetched."""
        return (
            self._accepting
            and not self._revoking
            and self.app.flow_control.is_active()
            and event.message.generation_id == self.app.consumer_generation_id
        )

    async def _wait_until_due(self, event: faust.EventT[Any]) -> bool:
        """Hold the retry topic until its head record is due; False if it stopped being ours.

        Parked records are appended in order of parking, so waiting on the head is a delay queue.
        """
        due = parked_until(event.value)
        while self._still_ours(event) and (wait := due - time.time()) > 0:
            await asyncio.sleep(min(wait, RETRY_POLL_S))
        return self._still_ours(event)

    def _kind_of(self, kind: str, value: bytes) -> str:
        if kind != "retry":
            return kind  # "batches" too: a ticket, not a job
        from schemas.jobs import decode_object

        with contextlib.suppress(Exception):
            return str(decode_object(value).get("kind", "classify"))
        return "classify"

    async def _handle(self, kind: str, event: faust.EventT[Any], claim: claims.Claim) -> None:
        claims.hold(claim)
        message = event.message
        origin = RecordOrigin(
            kind=self._kind_of(kind, message.value or b""),
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            key=message.key.decode(errors="replace") if message.key else None,
        )
        timestamp = int(message.timestamp * 1000) if message.timestamp else None
        # A record keeps its slot until it is durable, not just answered: what a crash can make
        # us pay twice is bounded by max_in_flight.
        release = _once(self._slots.release)

        def on_durable() -> None:
            event.ack()
            release()

        record = InboundRecord(origin, message.value or b"", timestamp, on_durable)
        answered = False
        try:
            await self.pipeline.process(record)
            answered = True
        except claims.RecordReleased:
            pass  # unacked: the partition's next owner reads it again
        except Exception:  # a bug must not stop the worker; the record stays unacked
            log.exception(
                "unexpected error on %s:%s@%s", origin.topic, origin.partition, origin.offset
            )
        finally:
            if answered:
                self._flush_if_many_wait()
            else:
                self._leave(event)
                release()

    def _flush_if_many_wait(self) -> None:
        """Half the slots wait on the next flush: flush now rather than at the interval."""
        if self.pipeline.awaiting_ack < self._flush_at:
            return
        if self._early_flush is None or self._early_flush.done():
            self._early_flush = asyncio.create_task(self._flush_early())

    async def _flush_early(self) -> None:
        with contextlib.suppress(SinkWriteError):  # logged by the sink; its own loop retries
            await self.pipeline.settle()  # no commit: faust's interval commits what it acked

    async def _finish_in_flight(self, grace_s: float) -> None:
        self._accepting = False
        self.intake.close()  # skipping through the rest of a backlog would fetch all of it
        for task in await self._let_go(None, grace_s):
            task.cancel()  # unacked: Kafka redelivers it

    async def run(self, drain: bool) -> int:
        """Run until SIGTERM/SIGINT, or (with drain) until the backlog is done; exit code."""
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        watch = DrainWatch(self.bootstrap, self.config.kafka.group_id, self.topics)
        waiters: list[asyncio.Task[Any]] = [asyncio.create_task(stop.wait())]
        helpers: list[asyncio.Task[None]] = []
        # The group join (held ~1 s by Tansu for a new group) overlaps the pipeline's own
        # start-up; records wait at the agents until the pipeline is ready.
        joining = self.join()
        try:
            await self._start_pipeline(watch if drain else None)
            await joining
        except BaseException:
            await self.abandon_join()
            raise
        if drain:
            self._drain = watch
            follow = self.drain_follower or (lambda watch: watch.wait_done())
            waiters.append(asyncio.create_task(follow(watch)))
            helpers.append(asyncio.create_task(self._settle_when_idle()))
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in [*waiters, *helpers]:
                w.cancel()
            await self._shutdown(watch if drain else None)
        return 0

    async def _start_pipeline(self, watch: DrainWatch | None) -> None:
        """Everything but the group, side by side with it: drain targets, done set, producer;
        then `before_ready`, and the agents may take records."""
        if watch is not None:
            await asyncio.gather(
                watch.start(), self.pipeline.start(on_produced=watch.note_produced)
            )
        else:
            await self.pipeline.start()
        if self.before_ready is not None:
            self.before_ready()  # while the broker still holds the group join, mostly
        self._ready.set()

    async def _settle_when_idle(self) -> None:
        """--drain: once nothing is being worked on, flush and commit now instead of at the
        next flush and commit intervals (up to ~2 s by default), since a drain ends on commit."""
        while True:
            await asyncio.sleep(DRAIN_SETTLE_S)
            if self._in_flight or not self.pipeline.pending_records:
                continue
            with contextlib.suppress(Exception):  # the sink's own loop logs and retries
                await self.pipeline.settle(self._commit)

    async def _commit(self) -> None:
        """Commit the offsets acked so far (faust's consumer; never past a record in flight)."""
        await self.app.consumer.commit()
        if self._drain is not None:
            self._drain.nudge()

    async def _shutdown(self, watch: DrainWatch | None) -> None:
        """Finish in-flight work, flush, commit and leave, all within `shutdown_grace_s`."""
        loop = asyncio.get_running_loop()
        grace = self.config.worker.shutdown_grace_s
        deadline = loop.time() + grace
        log.info("stopping: %d records in flight, grace %.0f s", len(self._in_flight), grace)
        await self._finish_in_flight(grace - min(grace / 3, SHUTDOWN_RESERVE_S))
        await self.pipeline.stop(self._commit)  # final settle: flush, acks, commit
        try:
            await asyncio.wait_for(self.app.stop(), max(0.5, deadline - loop.time()))
        except TimeoutError:
            log.warning("the consumer did not leave its group in time; its session will expire")
        if watch is not None:
            await watch.stop()
        log.info("stopped after %.1f s", grace - (deadline - loop.time()))
