"""Records faust fetched and dropped are sought back to, and nothing it delivered is read again."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest
from faust.transport.consumer import Consumer
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.types import TP

from consumers import refetch
from consumers.refetch import dropped_offsets, getmany, install, seek_back_in_place

RETRY = TP("retry", 0)
JOBS = TP("jobs", 0)


@dataclass
class State:
    """aiokafka's TopicPartitionState: one per partition per assignment."""

    position: int | None

    @property
    def has_valid_position(self) -> bool:
        return self.position is not None


@dataclass
class Kafka:
    """The aiokafka consumer, as far as a seek back looks at it."""

    states: dict[Any, State]
    sought: dict[Any, int] = field(default_factory=dict)

    @property
    def _subscription(self) -> Any:
        assignment = SimpleNamespace(state_value=self.states.get)
        return SimpleNamespace(subscription=SimpleNamespace(assignment=assignment))

    def seek(self, tp: Any, offset: int) -> None:
        self.sought[tp] = offset
        self.states[tp].position = offset


def records(*offsets: int) -> list[Any]:
    return [SimpleNamespace(offset=offset) for offset in offsets]


def test_the_records_not_delivered_are_the_dropped_ones() -> None:
    batch = {RETRY: records(3, 4, 5), JOBS: records(7)}
    assert dropped_offsets(batch, {RETRY: {3, 4, 5}, JOBS: {7}}) == {}
    assert dropped_offsets(batch, {RETRY: {3}}) == {RETRY: (4, 5), JOBS: (7, 7)}
    assert dropped_offsets(batch, {RETRY: {4}, JOBS: {7}}) == {RETRY: (3, 5)}  # skipped, then not


def test_a_dropped_batch_is_sought_back_to_where_it_started() -> None:
    state = State(position=1)  # the parked record 0 fetched: aiokafka reads on from 1
    kafka = Kafka({RETRY: state})
    assert seek_back_in_place(kafka, {RETRY: state}, {RETRY: (0, 0)}) == {RETRY: 0}
    assert state.position == 0


def test_no_seek_back_once_a_rebalance_or_another_seek_moved_the_partition() -> None:
    fetched_with = State(position=6)
    reassigned = Kafka({RETRY: State(position=2)})  # a new assignment, read from committed 2
    assert seek_back_in_place(reassigned, {RETRY: fetched_with}, {RETRY: (4, 5)}) == {}
    assert reassigned.sought == {}
    fetched_with.position = 2  # faust's own seek to the committed offset
    moved = Kafka({RETRY: fetched_with})
    assert seek_back_in_place(moved, {RETRY: fetched_with}, {RETRY: (4, 5)}) == {}
    revoked = Kafka({})
    assert seek_back_in_place(revoked, {RETRY: fetched_with}, {RETRY: (4, 5)}) == {}


class FakeConsumer:
    """What faust's own `getmany` and the seek back use of its consumer: a batch fetched while
    a rebalance has stopped the flow, so faust drops all of it."""

    def __init__(self, batch: dict[Any, list[Any]], kafka: Kafka) -> None:
        self.batch = batch
        self.app = SimpleNamespace(
            consumer_generation_id=2,
            monitor=SimpleNamespace(track_tp_end_offset=lambda tp, hw: None),
        )
        self.should_stop = False
        self.flow_active = False
        self.log = SimpleNamespace(dev=lambda *a, **k: None, warning=lambda *a, **k: None)
        self._read_offset: dict[Any, int | None] = {}
        self.perform_seeks = 0
        self.scheduler = SimpleNamespace(
            iterate=lambda batch: ((tp, r) for tp, rs in batch.items() for r in rs)
        )
        self._buffered_partitions: set[Any] = set()
        states = {tp: kafka.states[tp] for tp in batch}

        async def call_thread(fun: Any) -> Any:
            return await fun()

        self._thread = SimpleNamespace(
            _frugal_fetched=(batch, states),
            _ensure_consumer=lambda: kafka,
            call_thread=call_thread,
        )

    def highwater(self, tp: Any) -> int:
        return 2

    def _to_message(self, tp: Any, record: Any) -> Any:
        return record

    async def _wait_next_records(self, timeout: float) -> Any:
        self._frugal_batch = self.batch
        self._frugal_batch_seen = (2, self.flow_active, set(self.batch))
        return self.batch, set(self.batch)

    async def perform_seek(self) -> None:
        self.perform_seeks += 1  # committed offsets only: none here


async def test_a_batch_dropped_mid_rebalance_is_read_again() -> None:
    kafka = Kafka({RETRY: State(position=1)})
    consumer = FakeConsumer({RETRY: records(0)}, kafka)
    assert [m async for m in getmany(consumer, 1.0)] == []
    assert consumer.perform_seeks == 1  # faust's seek back, which covers committed offsets only
    assert kafka.sought == {RETRY: 0}


async def test_a_batch_delivered_in_full_is_not_sought() -> None:
    kafka = Kafka({RETRY: State(position=2)})
    consumer = FakeConsumer({RETRY: records(0, 1)}, kafka)
    consumer.flow_active = True
    delivered = [m.offset async for _, m in getmany(consumer, 1.0)]
    assert delivered == [0, 1]
    assert kafka.sought == {}


def test_install_wraps_faust_fetch_loop() -> None:
    install()
    assert Consumer.getmany is refetch.getmany
    assert AIOKafkaConsumerThread._fetch_records is refetch._fetch_records


async def test_a_fetch_notes_the_state_it_read_each_partition_with(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    batch = {RETRY: records(0)}

    async def faust_fetch(thread: Any, consumer: Any, *args: Any, **kwargs: Any) -> Any:
        return batch

    monkeypatch.setattr(refetch, "FAUST_FETCH_RECORDS", faust_fetch)
    state = State(position=1)
    thread = SimpleNamespace()
    assert await refetch._fetch_records(thread, Kafka({RETRY: state}), set(), 1.0) is batch
    assert thread._frugal_fetched == (batch, {RETRY: state})
    unsubscribed = SimpleNamespace(_subscription=SimpleNamespace(subscription=None))
    thread = SimpleNamespace()
    assert await refetch._fetch_records(thread, unsubscribed, set(), 1.0) is batch
    assert not hasattr(thread, "_frugal_fetched")  # nothing to seek back with
