"""The batcher: gathers batchable requests per provider and model, submits them as one
provider batch, and puts the batch on Kafka before the records' offsets may commit."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from bus.partition_log import LogUnavailable
from bus.topic_reader import TopicReader
from pipeline.budgets import Budgets, CallScope, Reservation
from pipeline.retry import RetryPolicy
from pipeline.story import utcnow
from providers.batch_base import BatchClient, BatchEntry
from schemas.batches import BatchItem, BatchTicket
from schemas.config import Config, ModelConfig
from schemas.errors import JobError, ProviderError
from schemas.jobs import TaskJob, parse_job

log = logging.getLogger("frugal.batches")
MAX_TICKET_BYTES = 4 * 1024 * 1024  # a ticket is one Kafka record: keep it well below the limit
TICK_S = 0.05
RESERVE_WAIT_S = 0.5  # a cap full of other holds: answer synchronously rather than wait

SendTicket = Callable[[str, bytes], Awaitable[None]]


UNANSWERED = "batch:unanswered"  # story.retries key: times a batch expired or was cancelled


def submission_key(job: TaskJob) -> str:
    """One attempt of one job: a batch never holds it twice, a restart never resubmits it."""
    parked = job.parked
    if parked is None:
        return f"{job.id}#0#0"
    return f"{job.id}#{parked.attempts}#{parked.retries.get(UNANSWERED, 0)}"


def custom_id_for(key: str) -> str:
    """Any job id -> a custom id every provider accepts (^[a-zA-Z0-9_-]{1,64}$)."""
    return "f" + hashlib.sha256(key.encode()).hexdigest()[:40]


@dataclass
class Waiting:
    """A request waiting for its batch; `submitted` says whether it made it into one."""

    model: ModelConfig
    item: BatchItem
    entry: BatchEntry
    scope: CallScope
    key: str
    since: float = field(default_factory=time.monotonic)
    submitted: asyncio.Future[bool] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class Batcher:
    """Queues per model; `enqueue` returns True once the request is durably in a batch."""

    def __init__(
        self,
        config: Config,
        clients: dict[str, BatchClient],
        budgets: Budgets,
        send_ticket: SendTicket,
        worker_id: str,
    ) -> None:
        self._config = config
        self._batch = config.batch
        self.clients = clients
        self._budgets = budgets
        self._send_ticket = send_ticket
        self._worker = worker_id
        self._retry = RetryPolicy(config.retry)
        self._queues: dict[str, list[Waiting]] = {}
        self._not_before: dict[str, float] = {}  # provider -> when creation may be tried again
        self._refusals: dict[str, int] = {}
        self.held: dict[str, Reservation] = {}  # custom id -> reservation, settled per result
        self.known: set[str] = set()  # submission keys in any batch on Kafka
        self.open: dict[str, set[str]] = {}  # provider -> batch ids this worker follows
        self.hurry = asyncio.Event()
        self._tail: TopicReader | None = None

    def queued(self, provider: str) -> int:
        return sum(len(q) for q in self._queues.values() if q and q[0].model.provider == provider)

    def provider_status(self, provider: str) -> str:
        """For the provider's status line: its open batches and requests queued for one."""
        if provider not in self.clients:
            return ""
        return f" batches={len(self.open.get(provider, ()))} batch_queued={self.queued(provider)}"

    async def enqueue(self, waiting: Waiting) -> bool:
        self._queues.setdefault(waiting.model.name, []).append(waiting)
        return await waiting.submitted

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            for name, queue in list(self._queues.items()):
                if queue and self._due(queue):
                    await self._submit_some(name, queue)
            await asyncio.sleep(TICK_S)
        for queue in self._queues.values():  # shutting down: those records are redelivered
            for waiting in queue:
                if not waiting.submitted.done():
                    waiting.submitted.cancel()

    def _limit(self, model: ModelConfig) -> int:
        return min(self._batch.max_requests, self.clients[model.provider].max_requests)

    def _due(self, queue: list[Waiting]) -> bool:
        model = queue[0].model
        if time.monotonic() < self._not_before.get(model.provider, 0.0):
            return False
        waited = time.monotonic() - queue[0].since
        return (
            len(queue) >= self._limit(model)
            or waited >= self._batch.max_wait_s
            or self.hurry.is_set()
        )

    def _take(self, queue: list[Waiting]) -> list[Waiting]:
        limit, size, n = self._limit(queue[0].model), 0, 0
        while n < len(queue) and n < limit:
            size += len(str(queue[n].item.job)) + 200
            if n and size > MAX_TICKET_BYTES:
                break
            n += 1
        taken = queue[:n]
        del queue[:n]
        return taken

    async def _submit_some(self, name: str, queue: list[Waiting]) -> None:
        group = self._take(queue)
        model = group[0].model
        group = await self._reserve(group)
        if not group:
            return
        client = self.clients[model.provider]
        try:
            batch_id = await client.submit(model, [w.entry for w in group])
        except ProviderError as error:
            await self._refused(name, group, error)
            return
        self._refusals[model.provider] = 0
        ticket = BatchTicket(
            batch_id=batch_id,
            provider=model.provider,
            model=model.name,
            submitted_at=utcnow(),
            worker=self._worker,
            items=[w.item for w in group],
        )
        try:
            await self._send_ticket(batch_id, ticket.model_dump_json().encode())
        except Exception:
            log.exception("batch %s submitted but not recorded on Kafka: cancelling it", batch_id)
            with contextlib.suppress(ProviderError):
                await client.cancel(batch_id)
            await self._release(group)
            return
        self.known.update(w.key for w in group)
        self.open.setdefault(model.provider, set()).add(batch_id)
        log.info("batch %s: %d requests to %s %s", batch_id, len(group), model.provider, model.name)
        for waiting in group:
            if not waiting.submitted.done():
                waiting.submitted.set_result(True)

    async def _reserve(self, group: list[Waiting]) -> list[Waiting]:
        """Hold each request's worst case; one a cap refuses goes synchronous (and may fit)."""
        kept = []
        for waiting in group:
            if waiting.submitted.done():  # its record was given up (shutdown, rebalance)
                continue
            reservation = None
            with contextlib.suppress(TimeoutError):  # batch holds last hours: do not wait on them
                reservation = await asyncio.wait_for(
                    self._budgets.reserve(waiting.scope, waiting.item.worst_case_usd),
                    RESERVE_WAIT_S,
                )
            if reservation is None:
                waiting.submitted.set_result(False)
                continue
            self.held[waiting.entry.custom_id] = reservation
            kept.append(waiting)
        return kept

    async def _release(self, group: list[Waiting], back_in_queue: bool = False) -> None:
        for waiting in group:
            reservation = self.held.pop(waiting.entry.custom_id, None)
            if reservation is not None:
                await self._budgets.settle(reservation, 0.0)
            if not back_in_queue and not waiting.submitted.done():
                waiting.submitted.set_result(False)

    async def _refused(self, name: str, group: list[Waiting], error: ProviderError) -> None:
        """Queue full or a hiccup: back off and keep the requests; anything else: go sync."""
        provider = group[0].model.provider
        if error.retryable:
            refusals = self._refusals.get(provider, 0)
            self._refusals[provider] = refusals + 1
            delay = self._retry.backoff_s(refusals, error.retry_after_s)
            self._not_before[provider] = time.monotonic() + delay
            log.warning("%s refused a batch (%s): retrying in %.1f s", provider, error.type, delay)
            await self._release(group, back_in_queue=True)
            self._queues[name][:0] = group
            return
        log.warning("%s batch API failed (%s): answering synchronously", provider, error)
        await self._release(group)

    async def settle(self, custom_id: str, scope: CallScope, spent_usd: float) -> None:
        reservation = self.held.pop(custom_id, None) or await self._budgets.reserve(scope, 0.0)
        if reservation is not None:
            await self._budgets.settle(reservation, spent_usd)

    def closed(self, provider: str, batch_id: str) -> None:
        self.open.get(provider, set()).discard(batch_id)

    async def load_known(self, bootstrap: str, topic: str) -> None:
        """Every submission on the batches topic so far (a restart must not resubmit them);
        `follow_known` then keeps reading it, for batches other workers submit."""
        reader = TopicReader(bootstrap, topic)
        await reader.start()
        self._tail = reader
        while await self._read_known(reader):
            pass

    async def _read_known(self, reader: TopicReader) -> int:
        values = await reader.read(timeout_ms=500, max_records=5000)
        for value in values:
            with contextlib.suppress(ValueError):
                ticket = BatchTicket.model_validate_json(value)
                self.known.update(_keys_of(ticket))
        return len(values)

    async def follow_known(self, stop: asyncio.Event) -> None:
        """Keep up with the batches topic: after a rebalance, a job another worker put in a
        batch is known here too (best effort: a submission in the last half second may not be)."""
        reader = self._tail
        if reader is None:
            return
        try:
            while not stop.is_set():
                with contextlib.suppress(LogUnavailable, OSError):  # a broker hiccup: next turn
                    await self._read_known(reader)
        finally:
            await reader.stop()
            self._tail = None

    async def aclose(self) -> None:
        for client in self.clients.values():
            await client.aclose()


def _keys_of(ticket: BatchTicket) -> list[str]:
    keys = []
    for item in ticket.items:
        with contextlib.suppress(JobError):
            keys.append(submission_key(parse_job(item.job)))
    return keys
