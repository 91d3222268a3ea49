"""Cost caps: reserve the worst case, settle at actual, and share spend between workers via Kafka."""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime

import pytest

from bus.broker import EmbeddedBroker
from bus.topics import ensure_topics, spend_topic
from pipeline.budgets import Budgets, CallScope, window_key
from pipeline.spend import RESERVATION_TTL_S, SpendBook, SpendEvent, SpendLedger
from schemas.config import BudgetConfig, KafkaConfig

SCOPE = CallScope(provider="openai", model="gpt-4o-mini", kind="classify", tenant="acme")
_ids = itertools.count()


def cap(limit: float, scope: str = "global", match: str | None = None, window: str = "total"):
    return BudgetConfig(scope=scope, match=match, window=window, limit_usd=limit)  # type: ignore[arg-type]


def reserve(book: SpendBook, usd: float, limit: float = 1.0, ts: float = 0.0) -> SpendEvent:
    return SpendEvent("reserve", f"r{next(_ids)}", ("k",), usd, ts, (limit,))


async def test_a_call_that_would_break_a_cap_is_refused() -> None:
    budgets = Budgets([cap(1.0)], hold_wait_s=0.05)
    held = [await budgets.reserve(SCOPE, 0.3) for _ in range(4)]
    assert [h is not None for h in held] == [True, True, True, False]
    for h in held[:3]:
        assert h is not None
        await budgets.settle(h, 0.3)
    started = asyncio.get_running_loop().time()
    assert await budgets.reserve(SCOPE, 0.3) is None  # settled spend leaves no room: at once
    assert asyncio.get_running_loop().time() - started < 0.04


async def test_a_call_blocked_only_by_holds_in_flight_waits_for_them_to_settle() -> None:
    budgets = Budgets([cap(1.0)], hold_wait_s=5.0)
    first = await budgets.reserve(SCOPE, 0.8)
    assert first is not None and budgets.would_fit(SCOPE, 0.8)  # routing ignores holds
    waiting = asyncio.create_task(budgets.reserve(SCOPE, 0.8))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    await budgets.settle(first, 0.1)  # the call cost far less than its worst case
    assert await asyncio.wait_for(waiting, 1.0) is not None


async def test_settling_at_the_actual_cost_frees_the_rest_of_the_reservation() -> None:
    budgets = Budgets([cap(1.0)], hold_wait_s=0.05)
    first = await budgets.reserve(SCOPE, 0.9)
    assert first is not None and await budgets.reserve(SCOPE, 0.2) is None
    await budgets.settle(first, 0.1)
    assert await budgets.reserve(SCOPE, 0.9) is not None
    assert budgets.spent(first.keys[0]) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("budget", "applies"),
    [
        (cap(1, "global"), True),
        (cap(1, "provider", "openai"), True),
        (cap(1, "provider", "anthropic"), False),
        (cap(1, "model", "gpt-4o-mini"), True),
        (cap(1, "kind", "extract"), False),
        (cap(1, "tenant", "acme"), True),
    ],
)
async def test_caps_apply_by_scope(budget: BudgetConfig, applies: bool) -> None:
    budgets = Budgets([budget], hold_wait_s=0.05)
    assert (await budgets.reserve(SCOPE, 2.0) is None) == applies


async def test_each_window_is_its_own_budget() -> None:
    now = [datetime(2026, 3, 1, 10, 59, tzinfo=UTC).timestamp()]
    budgets = Budgets([cap(1.0, window="hour")], clock=lambda: now[0], hold_wait_s=0.05)
    assert await budgets.reserve(SCOPE, 1.0) is not None
    assert await budgets.reserve(SCOPE, 0.5) is None
    now[0] += 120  # the next hour
    assert await budgets.reserve(SCOPE, 1.0) is not None
    assert window_key("day", now[0]) == "2026-03-01" and window_key("month", now[0]) == "2026-03"


def test_the_book_is_a_deterministic_state_machine() -> None:
    events = [reserve(SpendBook(), usd) for usd in (0.4, 0.4, 0.4, 0.1)]
    one, two = SpendBook(), SpendBook()
    decisions = [one.apply(e) for e in events]
    assert decisions == [two.apply(e) for e in events] == [True, True, False, True]
    assert one.spent("k") == two.spent("k") == pytest.approx(0.9)


def test_holds_of_a_crashed_worker_expire() -> None:
    book = SpendBook()
    assert book.apply(reserve(book, 1.0, ts=0.0))
    assert not book.apply(reserve(book, 0.5, ts=10.0))
    assert book.apply(reserve(book, 0.5, ts=RESERVATION_TTL_S + 1))


def test_a_settlement_after_its_hold_expired_still_counts() -> None:
    book = SpendBook()
    event = reserve(book, 0.5, ts=0.0)
    book.apply(event)
    book.apply(reserve(book, 0.1, ts=RESERVATION_TTL_S + 5))  # expires the first hold
    book.apply(SpendEvent("settle", event.rid, ("k",), 0.3, RESERVATION_TTL_S + 6))
    assert book.spent("k") == pytest.approx(0.4)


async def _ledger(bootstrap: str, kafka: KafkaConfig, name: str) -> SpendLedger:
    ledger = SpendLedger(bootstrap, spend_topic(kafka), name)
    await ledger.start()
    return ledger


async def test_two_workers_cannot_both_take_the_last_dollars(
    broker: EmbeddedBroker, prefix: str
) -> None:
    kafka = KafkaConfig(topic_prefix=prefix, partitions=2)
    await ensure_topics(broker.bootstrap, kafka)
    a, b = [await _ledger(broker.bootstrap, kafka, name) for name in ("a", "b")]
    caps = [cap(1.0, "provider", "openai")]
    budgets_a, budgets_b = Budgets(caps, a, hold_wait_s=0.3), Budgets(caps, b, hold_wait_s=0.3)
    try:
        held = await asyncio.gather(
            *(budgets.reserve(SCOPE, 0.15) for _ in range(5) for budgets in (budgets_a, budgets_b))
        )
        granted = [h for h in held if h is not None]
        assert len(granted) == 6  # 6 x 0.15 <= 1.0 < 7 x 0.15, however the race goes
        await asyncio.gather(
            *((budgets_a if h.rid.startswith("a:") else budgets_b).settle(h, 0.1) for h in granted)
        )
        key = granted[0].keys[0]
        # Every worker converges on the same total: 6 x 0.1 settled.
        for ledger in (a, b):
            await _until(lambda ledger=ledger: ledger.book.spent(key) == pytest.approx(0.6))
        late = await _ledger(broker.bootstrap, kafka, "restarted")
        try:  # a worker that starts later replays the log and knows the total
            await _until(lambda: late.book.spent(key) == pytest.approx(0.6))
            assert await Budgets(caps, late, hold_wait_s=0.1).reserve(SCOPE, 0.45) is None
            assert await Budgets(caps, late).reserve(SCOPE, 0.35) is not None
        finally:
            await late.stop()
    finally:
        await a.stop()
        await b.stop()


async def _until(condition, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.02)
