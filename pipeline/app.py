"""Wiring: adapters, router, limits, budgets, runner and sinks behind one `process` call."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Callable, Sequence

import httpx

from bus.producer import Producer
from bus.topics import batches_topic, dlq_topic, job_topic, retry_topic, spend_topic
from pipeline import claims, dead_letters
from pipeline.batch_mode import BatchMode
from pipeline.batch_results import BatchFollower
from pipeline.batching import Batcher
from pipeline.budgets import Budgets, CallScope
from pipeline.dead_letters import scrub
from pipeline.done import DoneJobs
from pipeline.inbound import Commit, InboundRecord
from pipeline.ingest import document_jobs
from pipeline.lake_upkeep import compact_once, compact_periodically
from pipeline.limits import Limits
from pipeline.metrics import PipelineMetrics
from pipeline.quality import verdicts_from_lake
from pipeline.routing import Router
from pipeline.runner import JobFailed, JobRunner, ParkJob
from pipeline.spend import SpendLedger
from pipeline.validity import outcomes_from_lake
from pipeline.worker_port import WorkerPort
from providers.base import ProviderAdapter
from providers.batch_registry import build_batch_client
from providers.pricing import ModelPrices, resolve_prices
from providers.registry import build_adapter
from providers.transport import tls_context
from schemas.batches import BatchTicket
from schemas.config import Config, ModelConfig
from schemas.errors import FrugalError, JobError
from schemas.jobs import TaskJob, job_to_json, parse_document, parse_job
from schemas.rows import DeadLetter, Row
from sinks.catalog import ensure_catalog, lake_never_written
from sinks.parquet import ParquetSink

log = logging.getLogger("frugal.worker")


def default_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def resolve_all_prices(config: Config) -> dict[str, ModelPrices]:
    return {m.name: resolve_prices(m, config.provider(m.provider)) for m in config.models}


class Pipeline(WorkerPort):
    """One worker's machinery; `process` takes a record all the way to durable rows."""

    def __init__(
        self,
        config: Config,
        bootstrap: str,
        worker_id: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.config = config
        self.bootstrap = bootstrap
        self.worker_id = worker_id or default_worker_id()
        self.prices = resolve_all_prices(config)
        self.adapters: dict[str, ProviderAdapter] = {
            p.name: build_adapter(p, transport=transport) for p in config.providers
        }
        self.limits = Limits(config.providers)
        # Caps hold across workers through the shared spend log; without caps there is no log.
        self.spend = (
            SpendLedger(bootstrap, spend_topic(config.kafka), self.worker_id)
            if config.budgets
            else None
        )
        self.budgets = Budgets(config.budgets, self.spend)
        self.router = Router(
            config,
            self.prices,
            provider_available=self.limits.available,
            within_budget=self._within_budget if config.budgets else None,  # no caps: all fit
        )
        self.runner = JobRunner(
            config,
            self.adapters,
            self.prices,
            self.router,
            self.limits,
            self.budgets,
            self.worker_id,
        )
        self.batch_mode = self._build_batch_mode(transport)
        self.sink = ParquetSink(config.storage, self.worker_id)
        self.producer = Producer(bootstrap)
        self.done = DoneJobs(config.storage)
        self._running: dict[str, asyncio.Future[None]] = {}  # job id -> done when it settles
        self.secrets = [p.api_key.get_secret_value() for p in config.providers if p.api_key]
        # Told of every record this worker feeds back to its own topics (drain raises its targets).
        self.produced_hook: Callable[[str, int, int], None] | None = None
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._catalog: asyncio.Future[None] | None = None
        self.status_sources: list[Callable[[], str]] = []  # more lines for the status log
        self.processed = 0
        self.metrics = PipelineMetrics()
        self.metrics.sources.limits = self.limits
        self.metrics.sources.budgets = config.budgets
        self.metrics.sources.spent = self.budgets.spent

    async def start(self, on_produced: Callable[[str, int, int], None] | None = None) -> None:
        """Ready to process; `on_produced` is told of every record fed back to our topics.

        Everything the first record needs starts side by side (the first answer waits on it).
        """
        if on_produced is not None:
            self.produced_hook = on_produced
        remember = not lake_never_written(self.config.storage)  # before the catalog is made
        # The catalog only serves `frugal sql`: it is made beside the work, and awaited on stop.
        self._catalog = asyncio.ensure_future(self._make_catalog())
        await asyncio.gather(
            self.done.refresh(),
            self._remember_models() if remember else asyncio.sleep(0),
            self.producer.start(),
            self._warm_tls(),
        )
        if self.spend is not None:
            await self.spend.start()
        self._tasks = [
            asyncio.create_task(self.sink.run(self._stop), name="sink"),
            asyncio.create_task(self._report_status(), name="status"),
        ]
        if self.config.storage.compact:
            upkeep = compact_periodically(self.config.storage, self._stop)
            self._tasks.append(asyncio.create_task(upkeep, name="compact"))
        if self.batch_mode.active:
            await self.batch_mode.batcher.load_known(
                self.bootstrap, batches_topic(self.config.kafka)
            )
            batcher = self.batch_mode.batcher
            self._tasks.append(asyncio.create_task(batcher.run(self._stop)))
            self._tasks.append(asyncio.create_task(batcher.follow_known(self._stop)))

    async def _make_catalog(self) -> None:
        await asyncio.to_thread(ensure_catalog, self.config.storage)
        # The done set reads folded job ids through a lake connection (~0.15-0.3 s to open):
        # opened now, beside the group join, not by a refresh (the first record waits for the
        # refresh under way; on a lake with nothing folded yet it needs no connection at all).
        await asyncio.to_thread(self.done.warm)

    async def _warm_tls(self) -> None:
        """Read the CA bundle now, beside the group join, rather than on the first call."""
        if any(p.base_url.startswith("https:") for p in self.config.providers):
            await asyncio.to_thread(tls_context)

    async def _remember_models(self) -> None:
        """A restarted worker remembers which models answer validly, from the usage table, and
        how often each model's answers agreed with the audit model (`model_quality`)."""
        storage = self.config.storage
        outcomes, verdicts = await asyncio.gather(
            asyncio.to_thread(outcomes_from_lake, storage),
            asyncio.to_thread(verdicts_from_lake, storage),
        )
        self.router.stats.seed(outcomes)
        self.router.quality.seed(verdicts)

    async def stop(self, commit: Commit | None = None) -> None:
        """Settle what is buffered (flush, running its acks; then `commit`), close connections."""
        self._stop.set()
        for task in self._tasks:
            if task.get_name() == "status":
                task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.settle(commit)
        self.sink.close()  # after the final flush: the journal has nothing left to recover
        if self.config.storage.lake_url:  # a shared lake: hand every row over before leaving
            await compact_once(self.config.storage, min_age_s=0.0)
        await self.producer.stop()
        await self.batch_mode.batcher.aclose()
        if self.spend is not None:
            await self.spend.stop()
        for adapter in self.adapters.values():
            await adapter.aclose()
        if self._catalog is not None:
            await self._catalog  # a catalog that could not be made fails the command, as before

    async def _report_status(self) -> None:
        interval = self.config.worker.status_interval_s
        while not self._stop.is_set():
            await asyncio.sleep(interval)
            for name, limiter in self.limits.providers.items():
                caps = self.budgets.for_provider(name)
                batches = self.batch_mode.batcher.provider_status(name)
                log.info(
                    "status %s%s%s", limiter.status(), batches, f" spend {caps}" if caps else ""
                )
            for line in [*self.budgets.status(), *(source() for source in self.status_sources)]:
                log.info("status %s", line)

    def _within_budget(self, model: ModelConfig, job: TaskJob, usd: float) -> bool:
        return self.budgets.would_fit(
            CallScope(model.provider, model.name, job.kind, job.tenant, job.user), usd
        )

    async def process(self, record: InboundRecord) -> None:
        """Run one record; its offset is acked only once its rows (or dead letter) are durable."""
        self.metrics.count_taken(record.origin.kind)
        try:
            if record.origin.kind == "batches":
                await self._follow_batch(record)
            elif record.origin.kind == "ingest":
                await self._fan_out(record)
            else:
                await self._run_job(record, parse_job(record.value, record.origin.kind))
        except claims.RecordReleased:
            raise  # the partition moved on before anything was paid: its next owner runs it
        except JobError as error:
            log.warning("invalid record %s: %s", record.origin.key or record.origin.offset, error)
            letter = dead_letters.for_invalid_record(
                record.origin, record.value, error, self.secrets
            )
            await self._dead_letter(record, letter, [])
        except Exception as error:  # a bug must neither stop the worker nor wedge its partition
            log.exception("internal error on %s", record.origin)
            letter = dead_letters.for_invalid_record(
                record.origin, record.value, error, self.secrets
            )
            await self._dead_letter(record, letter, [])
        finally:
            self.processed += 1

    def hurry(self, on: bool) -> None:
        """While on, jobs waiting out a backoff park on the retry topic instead (shutdown, revoke)."""
        for event in (self.runner.hurry, self.batch_mode.batcher.hurry):
            if on:
                event.set()
            else:
                event.clear()

    async def _run_job(self, record: InboundRecord, job: TaskJob) -> None:
        await self.done.settled()
        while (running := self._running.get(job.id)) is not None:
            await asyncio.shield(running)  # a duplicate of a job in flight here: see how it ends
        if job.id in self.done:
            self.sink.add([], on_durable=record.ack)  # already answered: never pay twice
            return
        settled = asyncio.get_running_loop().create_future()
        self._running[job.id] = settled
        try:
            await self._answer(record, job)
        finally:
            del self._running[job.id]
            settled.set_result(None)

    async def _answer(self, record: InboundRecord, job: TaskJob) -> None:
        need = self.runner.routing_input(job)
        created_at = record.created_at  # a datetime made from the record's timestamp: once
        if await self.batch_mode.take(job, need, created_at):
            self.sink.add([], on_durable=record.ack)  # durably part of a submitted batch
            return
        try:
            result, story = await self.runner.run(job, created_at, need)
        except JobFailed as failed:
            letter = dead_letters.for_job(
                record.origin, job, failed.error, failed.story, self.secrets
            )
            await self._dead_letter(record, letter, failed.story.usage_rows)
            return
        except ParkJob as park:
            await self._park(record, job, park)
            return
        self.done.add(job.id)
        rows: list[Row] = [*scrub(story.usage_rows, self.secrets), result]
        if job.replay_count:
            rows.append(dead_letters.resolved(job))
        self._write(rows, record)

    def _build_batch_mode(self, transport: httpx.AsyncBaseTransport | None) -> BatchMode:
        clients = {
            name: client
            for name, adapter in self.adapters.items()
            if (client := build_batch_client(adapter, transport=transport)) is not None
        }
        batcher = Batcher(self.config, clients, self.budgets, self._send_ticket, self.worker_id)
        follower = BatchFollower(self.config, self.runner, batcher)
        return BatchMode(self.config, clients, self.router, self.limits, batcher, follower)

    async def _send_ticket(self, batch_id: str, value: bytes) -> None:
        topic = batches_topic(self.config.kafka)
        partition, offset = await self.producer.send(topic, batch_id, value)
        if self.produced_hook is not None:
            self.produced_hook(topic, partition, offset)

    async def _follow_batch(self, record: InboundRecord) -> None:
        """A submitted batch (on the batches topic): poll it to its end, then write every
        result; the ticket's offset commits once they and the next tries are durable."""
        ticket = BatchTicket.model_validate_json(record.value)
        await self.done.settled()
        done = {i.job.get("id") for i in ticket.items if i.job.get("id") in self.done}
        end = await self.batch_mode.follower.follow(ticket, {str(j) for j in done})
        for job in end.again:
            await self._feed_back(retry_topic(self.config.kafka), job)
        for job_id in end.answered:
            self.done.add(job_id)
        self.sink.add(scrub(end.rows, self.secrets), on_durable=record.ack)

    async def _fan_out(self, record: InboundRecord) -> None:
        doc = parse_document(record.value)
        jobs = document_jobs(doc, self.config)
        for job in jobs:
            topic = job_topic(self.config.kafka, job.kind)
            await self._feed_back(topic, job)
        self.metrics.count_record("ingest", "split")
        record.ack()

    async def _park(self, record: InboundRecord, job: TaskJob, park: ParkJob) -> None:
        """Re-queue on the retry topic with its story; ack once that and its usage are durable."""
        state = park.story.parked_state(park.delay_s)
        if not state.source_topic:
            origin = record.origin
            state = state.model_copy(
                update={
                    "source_topic": origin.topic,
                    "source_partition": origin.partition,
                    "source_offset": origin.offset,
                }
            )
        log.info("parking %s for %.1f s (%s)", job.id, park.delay_s, state.last_error_type)
        await self._feed_back(
            retry_topic(self.config.kafka), job.model_copy(update={"parked": state})
        )
        self.metrics.count_record(job.kind, "parked")
        self._write(scrub(park.story.usage_rows, self.secrets), record)

    async def _feed_back(self, topic: str, job: TaskJob) -> None:
        partition, offset = await self.producer.send(topic, job.id, job_to_json(job))
        if self.produced_hook is not None:
            self.produced_hook(topic, partition, offset)

    async def _dead_letter(
        self, record: InboundRecord, letter: DeadLetter, usage: Sequence[Row]
    ) -> None:
        """The DLQ record first, then the table rows; the offset is acked once both are durable."""
        topic = dlq_topic(self.config.kafka, record.origin.kind)
        await self.producer.send(topic, letter.job_id, letter.model_dump_json().encode())
        self._write([*scrub(usage, self.secrets), letter], record)

    def _write(self, rows: Sequence[Row], record: InboundRecord) -> None:
        """Hand rows to the sink (acking the record once durable) and count them as metrics."""
        self.metrics.count_rows(rows)
        self.sink.add(rows, on_durable=record.ack)


__all__ = ["FrugalError", "InboundRecord", "Pipeline"]
