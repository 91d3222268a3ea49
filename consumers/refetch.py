"""Records faust fetched and dropped are read again at once, not at the next rebalance.

faust's `Consumer.getmany` takes a batch from aiokafka (whose position then moves past it) and
hands it to the streams one record at a time, but drops the rest of it when the flow stops, the
generation changes, or a partition is not active (faust/transport/consumer.py). A fetch begun
before a rebalance waits in aiokafka (up to its 1 s timeout) across it and can return the new
assignment's first records while faust's flow is still stopped: the batch is dropped whole,
and faust seeks back to the committed offsets only (`perform_seek`; aiokafka's
`seek_to_committed` skips a partition with none), so a partition that never had a commit stays
past the dropped records until the next rebalance. That is how a record parked on the retry
topic during a handover (the topic's first record, nothing committed) sat unread until the
next rebalance (tests/consumers/test_revoke_backoff.py).

Here each batch's partitions are noted with aiokafka's state for them when fetched, and a
partition whose records were dropped is sought back to its first dropped offset, only if
aiokafka still holds that very state at the position right after the batch: a rebalance since
(new state, position reset from the committed offset) or any other seek wins, and a record
faust delivered is never read again. Seeking every never-committed partition to its start
on each of faust's `perform_seek` instead failed the two-worker budget test in 2 of 4 runs.
`install()` puts this in place.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

from faust.transport.consumer import Consumer
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

from consumers.handover import describe_partitions

log = logging.getLogger("frugal.worker")

FAUST_GETMANY = Consumer.getmany
FAUST_WAIT_NEXT_RECORDS = Consumer._wait_next_records
FAUST_FETCH_RECORDS = AIOKafkaConsumerThread._fetch_records
SEEK_TIMEOUT_S = 10.0  # the consumer thread answers in ms; a stuck one must not stop fetching


async def _fetch_records(thread: Any, consumer: Any, *args: Any, **kwargs: Any) -> Any:
    """faust's fetch (in the consumer thread), noting aiokafka's state of each partition in the
    batch: a new assignment or a seek after it means the batch is no longer where it reads."""
    records = await FAUST_FETCH_RECORDS(thread, consumer, *args, **kwargs)
    if records:
        subscription = consumer._subscription.subscription
        assignment = subscription.assignment if subscription is not None else None
        if assignment is not None:  # else no seek back: a new assignment reads them anyway
            thread._frugal_fetched = (records, {tp: assignment.state_value(tp) for tp in records})
    return records


async def _wait_next_records(consumer: Any, timeout: float) -> Any:
    """faust's, keeping the batch so that `getmany` can tell what of it was never delivered."""
    records, active_partitions = await FAUST_WAIT_NEXT_RECORDS(consumer, timeout)
    consumer._frugal_batch = records
    # What faust's `getmany` decides by, as it takes the batch (no await in between).
    consumer._frugal_batch_seen = (
        consumer.app.consumer_generation_id,
        consumer.flow_active,
        active_partitions,
    )
    return records, active_partitions


def dropped_offsets(batch: Any, delivered: dict[Any, set[int]]) -> dict[Any, tuple[int, int]]:
    """Per partition, the first and last offset of the records in `batch` not delivered."""
    dropped: dict[Any, tuple[int, int]] = {}
    for tp, records in batch.items():
        seen = delivered.get(tp, set())
        offsets = [record.offset for record in records if record.offset not in seen]
        if offsets:
            dropped[tp] = (min(offsets), max(offsets))
    return dropped


def seek_back_in_place(
    kafka: Any, states: dict[Any, Any], dropped: dict[Any, tuple[int, int]]
) -> dict[Any, int]:
    """In the consumer thread: seek each partition to its first dropped offset where aiokafka
    still holds the state it fetched the batch with, at the position right after the batch.
    The partitions sought, with their offsets."""
    subscription = kafka._subscription.subscription
    assignment = subscription.assignment if subscription is not None else None
    sought: dict[Any, int] = {}
    for tp, (first, last) in dropped.items():
        state = states.get(tp)
        if assignment is None or state is None or assignment.state_value(tp) is not state:
            continue  # a rebalance since: the new assignment reads from the committed offset
        if not state.has_valid_position or state.position != last + 1:
            continue  # sought elsewhere since (faust's seek to a committed offset, or ours)
        kafka.seek(tp, first)
        sought[tp] = first
    return sought


def why_dropped(consumer: Any, dropped: dict[Any, tuple[int, int]]) -> str:
    """Which of faust's reasons to drop fetched records held (faust's `getmany`)."""
    generation, flow_active, active = consumer._frugal_batch_seen
    if not flow_active:
        return "flow stopped when the batch came: faust seeks to committed offsets only"
    if not consumer.flow_active:
        return "flow stopped mid-batch"
    if consumer.app.consumer_generation_id != generation:
        return "generation changed mid-batch"
    inactive = [tp for tp in dropped if active is not None and tp not in active]
    return f"partitions not active: {describe_partitions(inactive)}" if inactive else "not known"


async def _seek_back(
    consumer: Any, states: dict[Any, Any], dropped: dict[Any, tuple[int, int]]
) -> None:
    async def in_thread() -> dict[Any, int]:
        return seek_back_in_place(thread._ensure_consumer(), states, dropped)

    why = why_dropped(consumer, dropped)  # before the thread call: the flow may resume meanwhile
    thread = consumer._thread
    try:
        sought = await asyncio.wait_for(thread.call_thread(in_thread), SEEK_TIMEOUT_S)
    except Exception as exc:  # stopping, or the thread is gone: the next owner reads them
        log.info("could not read dropped records again (%r): %s", exc, dropped)
        return
    for tp, offset in sought.items():
        read = consumer._read_offset.get(tp)
        if read is not None and read > offset:
            consumer._read_offset[tp] = offset or None  # faust's `seek` does the same
    log.info(
        "fetched and dropped by faust (%s): %s; read again from %s",
        why,
        {f"{tp.topic}[{tp.partition}]": span for tp, span in dropped.items()},
        {f"{tp.topic}[{tp.partition}]": offset for tp, offset in sought.items()} or "-",
    )


async def getmany(consumer: Any, timeout: float) -> AsyncIterator[tuple[Any, Any]]:
    """faust's `getmany`; once it is done with a batch, what it dropped is sought back to."""
    consumer._frugal_batch = None
    delivered: dict[Any, set[int]] = {}
    async for tp, message in FAUST_GETMANY(consumer, timeout):
        delivered.setdefault(tp, set()).add(message.offset)
        yield tp, message
    batch = consumer._frugal_batch
    fetched = getattr(consumer._thread, "_frugal_fetched", None)
    if not batch or consumer.should_stop or fetched is None or fetched[0] is not batch:
        return
    dropped = dropped_offsets(batch, delivered)
    if dropped:
        await _seek_back(consumer, fetched[1], dropped)


def install() -> None:
    """Read dropped records again in every faust consumer of this process (idempotent)."""
    AIOKafkaConsumerThread._fetch_records = _fetch_records  # type: ignore[method-assign,assignment]
    Consumer._wait_next_records = _wait_next_records  # type: ignore[method-assign,assignment]
    Consumer.getmany = getmany  # type: ignore[method-assign,assignment]
