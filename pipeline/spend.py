"""Spend shared by every worker: reserve/settle events on one Kafka partition, replayed in order.

Why one ordered log: each worker consumes the `<prefix>.spend` topic's partition 0 from the
beginning and applies every event to the same `SpendBook` state machine. A reservation is
granted or refused by the book *when it is read back from the log*, not when it is sent, so all
workers reach the same decision for it and two workers can never both take the last dollars:
the later one in the log sees the earlier one's hold. A restarted worker replays the log and
recovers every total (the topic must keep its records: retention.ms = -1 on real Kafka).

Worst-case overshoot of a cap, across any number of workers: none from races. A cap can only
be exceeded by (a) a call whose actual cost is above its reservation (the reservation is the
full output allowance plus a margin on the estimated input, so only a tokenizer that counts
input more than ~25% above our estimate can do it, by that excess), and (b) a reservation
older than RESERVATION_TTL_S, which is presumed to belong to a crashed worker and released;
a live call that outlasts it (a provider timeout above ten minutes) could overshoot by its own
cost. A crashed worker's holds, the other way round, keep headroom back for at most the TTL.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

log = logging.getLogger("frugal.spend")

RESERVATION_TTL_S = 600.0  # an unsettled hold older than this belonged to a crashed worker
LIMIT_SLACK_USD = 1e-12  # float sums: a reservation that lands exactly on the cap fits
FETCH_WAIT_MS = 20  # how long a fetch may idle: bounds the reserve round trip (~10-20 ms)
GRANT_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class SpendEvent:
    """One line of the spend log: a hold of `usd` on `keys` (with their caps), or its settlement."""

    op: Literal["reserve", "settle"]
    rid: str
    keys: tuple[str, ...]
    usd: float
    ts: float  # wall clock of the worker that wrote it
    limits: tuple[float, ...] = ()  # reserve: the cap of each key, as its worker configured it

    def to_bytes(self) -> bytes:
        return json.dumps(
            {
                "op": self.op,
                "rid": self.rid,
                "keys": self.keys,
                "usd": self.usd,
                "ts": self.ts,
                "limits": self.limits,
            }
        ).encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> SpendEvent:
        data = json.loads(raw)
        return cls(
            op=data["op"],
            rid=str(data["rid"]),
            keys=tuple(data["keys"]),
            usd=float(data["usd"]),
            ts=float(data["ts"]),
            limits=tuple(float(x) for x in data.get("limits", ())),
        )


@dataclass(frozen=True)
class Hold:
    keys: tuple[str, ...]
    usd: float
    ts: float


class SpendBook:
    """Settled spend and open holds per budget key; the same events give the same book."""

    def __init__(self) -> None:
        self.settled: dict[str, float] = {}
        self.held: dict[str, float] = {}
        self.holds: OrderedDict[str, Hold] = OrderedDict()  # in log order, so oldest first

    def spent(self, key: str) -> float:
        return self.settled.get(key, 0.0) + self.held.get(key, 0.0)

    def fits(
        self, keys: Sequence[str], limits: Sequence[float], usd: float, holds: bool = True
    ) -> bool:
        """Whether `usd` more fits every cap, counting open holds (or only settled spend)."""
        spent = self.spent if holds else (lambda k: self.settled.get(k, 0.0))
        return all(
            spent(k) + usd <= limit + LIMIT_SLACK_USD for k, limit in zip(keys, limits, strict=True)
        )

    def apply(self, event: SpendEvent) -> bool:
        """Apply one event; for a reserve, whether it was granted."""
        self._expire(event.ts)
        if event.op == "settle":
            self._settle(event)
            return True
        if event.rid in self.holds:
            return True
        if not self.fits(event.keys, event.limits, event.usd):
            return False
        self.holds[event.rid] = Hold(event.keys, event.usd, event.ts)
        for k in event.keys:
            self.held[k] = self.held.get(k, 0.0) + event.usd
        return True

    def _settle(self, event: SpendEvent) -> None:
        hold = self.holds.pop(event.rid, None)
        if hold is not None:
            self._release(hold)
        for k in hold.keys if hold is not None else event.keys:
            self.settled[k] = self.settled.get(k, 0.0) + event.usd

    def _release(self, hold: Hold) -> None:
        for k in hold.keys:
            self.held[k] = max(0.0, self.held.get(k, 0.0) - hold.usd)

    def _expire(self, now: float) -> None:
        while self.holds:
            rid, hold = next(iter(self.holds.items()))
            if hold.ts >= now - RESERVATION_TTL_S:
                return
            del self.holds[rid]
            self._release(hold)
            log.warning(
                "spend: released a hold of $%.6f older than %.0f s", hold.usd, RESERVATION_TTL_S
            )


class SpendLedger:
    """This worker's connection to the spend log: publishes its events, replays everyone's."""

    def __init__(self, bootstrap: str, topic: str, worker_id: str) -> None:
        self.book = SpendBook()
        self._tp = TopicPartition(topic, 0)  # one partition: one order for every worker
        self._bootstrap = bootstrap
        self._prefix = f"{worker_id}:{os.urandom(4).hex()}"
        self._ids = itertools.count(1)
        self._pending: dict[str, asyncio.Future[bool]] = {}
        self._producer: AIOKafkaProducer | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self.events_read = 0
        self.on_change: Callable[[], None] | None = None  # called after each batch is applied

    def new_rid(self) -> str:
        return f"{self._prefix}:{next(self._ids)}"

    async def start(self) -> None:
        self._producer = AIOKafkaProducer(
            bootstrap_servers=self._bootstrap, acks="all", linger_ms=0
        )
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap,
            enable_auto_commit=False,
            fetch_max_wait_ms=FETCH_WAIT_MS,
        )
        await self._producer.start()
        await self._consumer.start()
        self._consumer.assign([self._tp])
        await self._consumer.seek_to_beginning(self._tp)
        self._task = asyncio.create_task(self._replay(), name="spend-log")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for client in (self._producer, self._consumer):
            if client is not None:
                with contextlib.suppress(KafkaError, OSError):
                    await client.stop()

    async def reserve(self, event: SpendEvent) -> bool:
        """Publish a hold and wait until the log decides on it (refused after GRANT_TIMEOUT_S)."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._pending[event.rid] = future
        try:
            await self.publish(event)
            return await asyncio.wait_for(asyncio.shield(future), GRANT_TIMEOUT_S)
        except (TimeoutError, KafkaError) as exc:
            log.warning("spend: no decision on a reservation (%s); treating it as refused", exc)
            return False
        finally:
            self._pending.pop(event.rid, None)

    async def publish(self, event: SpendEvent) -> None:
        assert self._producer is not None, "SpendLedger.start() first"
        await self._producer.send_and_wait(
            self._tp.topic, event.to_bytes(), key=event.rid.encode(), partition=0
        )

    async def _replay(self) -> None:
        assert self._consumer is not None
        while True:
            try:
                batches = await self._consumer.getmany(self._tp, timeout_ms=1000)
            except KafkaError as exc:
                log.warning("spend: reading the spend log failed (%s); retrying", exc)
                await asyncio.sleep(1.0)
                continue
            records = batches.get(self._tp, [])
            for record in records:
                self._read(record.value or b"")
            if records and self.on_change is not None:
                self.on_change()

    def _read(self, raw: bytes) -> None:
        try:
            event = SpendEvent.from_bytes(raw)
        except (ValueError, KeyError, TypeError):
            log.warning("spend: skipped an unreadable spend event")
            return
        granted = self.book.apply(event)
        self.events_read += 1
        future = self._pending.get(event.rid)
        if future is not None and event.op == "reserve" and not future.done():
            future.set_result(granted)
