"""`frugal batches`: the provider batches on Kafka with their status as each provider reports it,
and `frugal batches cancel ID`."""

from __future__ import annotations

import asyncio
import contextlib

from aiokafka import AIOKafkaConsumer, TopicPartition

from bus.broker import running_broker
from bus.read_to_end import read_to_end
from bus.topics import batches_topic
from providers.batch_base import BatchClient, BatchState
from providers.batch_registry import BATCH_CLIENTS
from providers.registry import build_adapter
from schemas.batches import BatchTicket
from schemas.config import Config
from schemas.errors import ConfigError, ProviderError
from sinks.catalog import QueryResult
from sinks.formatting import OutputFormat, render

COLUMNS = ["batch_id", "provider", "model", "requests", "status", "submitted_at", "ended_at"]


async def read_tickets(bootstrap: str, topic: str) -> list[BatchTicket]:
    """Every batch ever submitted, oldest first (the topic is small: one record per batch).

    Reads past the end offsets taken at the start, to the first empty poll (bus.read_to_end):
    a first fetch slower than one poll must not list no batch at all."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest",
        enable_auto_commit=False,
    )  # fmt: skip
    await consumer.start()
    tickets: dict[str, BatchTicket] = {}
    try:
        await consumer.topics()  # fresh metadata, so the topic's partitions are known
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        if not partitions:  # no batch was ever submitted under this prefix
            return []
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        async for record in read_to_end(consumer, partitions, poll_ms=2000):
            with contextlib.suppress(ValueError):
                ticket = BatchTicket.model_validate_json(record.value or b"")
                tickets.setdefault(ticket.batch_id, ticket)
    finally:
        await consumer.stop()
    return sorted(tickets.values(), key=lambda t: t.submitted_at)


def _client(config: Config, provider: str) -> BatchClient:
    settings = config.provider(provider)
    if settings.kind not in BATCH_CLIENTS:
        raise ConfigError(f"provider {provider!r} has no batch API")
    return BATCH_CLIENTS[settings.kind](build_adapter(settings))


async def _states(config: Config, tickets: list[BatchTicket]) -> list[BatchState | str]:
    clients: dict[str, BatchClient] = {}
    states: list[BatchState | str] = []
    try:
        for ticket in tickets:
            client = clients.get(ticket.provider) or clients.setdefault(
                ticket.provider, _client(config, ticket.provider)
            )
            try:
                states.append(await client.state(ticket.batch_id))
            except ProviderError as error:
                states.append(f"unknown ({error.type})")
    finally:
        for client in clients.values():
            await client.aclose()
            await client.adapter.aclose()
    return states


async def _listing(config: Config, bootstrap: str, status: str | None) -> QueryResult:
    tickets = await read_tickets(bootstrap, batches_topic(config.kafka))
    rows = []
    for ticket, state in zip(tickets, await _states(config, tickets), strict=True):
        word = state if isinstance(state, str) else state.status
        if status and status not in (word, getattr(state, "provider_status", None)):
            continue
        ended = (
            state.ended_at.isoformat() if isinstance(state, BatchState) and state.ended_at else ""
        )
        rows.append((ticket.batch_id, ticket.provider, ticket.model, len(ticket.items), word,
                     ticket.submitted_at.isoformat(), ended))  # fmt: skip
    return QueryResult(COLUMNS, rows)


def list_batches(config: Config, status: str | None, fmt: OutputFormat = "table") -> int:
    with running_broker(config.kafka.bootstrap) as bootstrap:
        print(render(asyncio.run(_listing(config, bootstrap, status)), fmt))
    return 0


async def _cancel(config: Config, bootstrap: str, batch_id: str) -> BatchState:
    tickets = await read_tickets(bootstrap, batches_topic(config.kafka))
    ticket = next((t for t in tickets if t.batch_id == batch_id), None)
    if ticket is None:
        raise ConfigError(f"no batch {batch_id!r} on {batches_topic(config.kafka)}")
    client = _client(config, ticket.provider)
    try:
        return await client.cancel(batch_id)
    finally:
        await client.aclose()
        await client.adapter.aclose()


def cancel_batch(config: Config, batch_id: str) -> int:
    """Cancel at the provider; the worker that follows it resubmits or answers its requests
    synchronously, as their deadlines allow."""
    with running_broker(config.kafka.bootstrap) as bootstrap:
        state = asyncio.run(_cancel(config, bootstrap, batch_id))
    print(f"cancelling {batch_id}: {state.provider_status}")
    return 0
