"""Bounded start-up: a worker loads the latest snapshot of the spend book, then the log's tail."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from bus.topics import ensure_topics, spend_topic
from pipeline.budgets import Budgets
from pipeline.spend import SpendBook, SpendEvent, SpendLedger
from pipeline.spend_snapshot import BookSnapshot
from schemas.config import BudgetConfig, KafkaConfig

KEY = "global:*:total@total"
HOUR_KEY = "global:*:hour@2020-01-01T00"  # a window long over


def history(n: int, now: float) -> list[SpendEvent]:
    """About n events: holds of $0.01 under a $1e9 cap, settled at $0.004, the last 3 open."""
    events = []
    for i in range(n // 2):
        keys = (KEY, HOUR_KEY)
        events.append(SpendEvent("reserve", f"h:{i}", keys, 0.01, now, (1e9, 1e9)))
        if i < n // 2 - 3:
            events.append(SpendEvent("settle", f"h:{i}", keys, 0.004, now))
    return events


def test_a_snapshot_restores_the_same_book_without_windows_that_are_over() -> None:
    book = SpendBook()
    for event in history(40, time.time()):
        book.apply(event)
    restored = BookSnapshot.from_bytes(BookSnapshot.of(book, 40, time.time()).to_bytes()).restore()
    assert restored.spent(KEY) == pytest.approx(book.spent(KEY))
    assert restored.held == pytest.approx({k: v for k, v in book.held.items()})
    assert list(restored.holds) == list(book.holds)
    assert HOUR_KEY not in restored.settled and KEY in restored.settled


async def produce(bootstrap: str, topic: str, events: list[SpendEvent]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20)
    await producer.start()
    try:
        sent = [
            await producer.send(topic, e.to_bytes(), key=e.rid.encode(), partition=0)
            for e in events
        ]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


async def until(condition: Any, timeout: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_a_late_worker_replays_only_the_tail_and_decides_exactly(
    each_broker: Any, prefix: str
) -> None:
    kafka = KafkaConfig(topic_prefix=prefix)
    await ensure_topics(each_broker.bootstrap, kafka)
    topic = spend_topic(kafka)
    events = history(2_000, time.time())
    await produce(each_broker.bootstrap, topic, events)
    first = SpendLedger(each_broker.bootstrap, topic, "first")
    first.snapshot_every = 300
    await first.start()
    try:
        await until(lambda: first.events_read == len(events))
        await until(lambda: first.snapshots_written >= 1)
    finally:
        await first.stop()
    late = SpendLedger(each_broker.bootstrap, topic, "late")
    budgets = Budgets([BudgetConfig(window="total", limit_usd=1e9)], late)  # before start()
    await late.start()
    try:
        expected = first.book
        await until(lambda: budgets.spent(KEY) == pytest.approx(expected.spent(KEY)))
        assert late.events_read < 300  # the tail after the latest snapshot, not the history
        assert list(late.book.holds) == list(expected.holds)
        # It decides like a full replay would: room for exactly what is left under a cap.
        left = expected.spent(KEY)
        assert late.book.fits((KEY,), (left + 0.01,), 0.01)
        assert not late.book.fits((KEY,), (left + 0.01,), 0.011)
    finally:
        await late.stop()
