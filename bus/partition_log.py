"""One Kafka partition used as an ordered log: every worker appends to it and reads it in full."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from schemas.errors import FrugalError

LAST_RECORD_WAIT_MS = 5_000


class LogUnavailable(FrugalError):
    """Kafka refused or failed a read or an append on a shared log."""

    type = "kafka_log_unavailable"


@dataclass(frozen=True, slots=True)
class LogRecord:
    offset: int
    value: bytes


class PartitionLog:
    """Partition 0 of `topic`: one order for every worker. Appends wait for the broker's ack."""

    def __init__(self, bootstrap: str, topic: str, fetch_wait_ms: int) -> None:
        self.topic = topic
        self._tp = TopicPartition(topic, 0)
        self._producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=fetch_wait_ms
        )

    async def start(self) -> None:
        await self._producer.start()
        await self._consumer.start()

    async def stop(self) -> None:
        for client in (self._producer, self._consumer):
            with contextlib.suppress(KafkaError, OSError):
                await client.stop()

    async def read_from(self, offset: int) -> None:
        """The next `read` starts at `offset` (0: the beginning, wherever retention put it)."""
        self._consumer.assign([self._tp])
        if offset:
            self._consumer.seek(self._tp, offset)
        else:
            await self._consumer.seek_to_beginning(self._tp)

    async def read(self, timeout_ms: int) -> list[LogRecord]:
        """The records after the last one read, waiting up to `timeout_ms` for the first."""
        try:
            batches = await self._consumer.getmany(self._tp, timeout_ms=timeout_ms)
        except KafkaError as exc:
            raise LogUnavailable(f"reading {self.topic} failed: {exc}") from None
        return [LogRecord(r.offset, r.value or b"") for r in batches.get(self._tp, [])]

    async def append(self, key: str, value: bytes) -> None:
        """Append to this log; returns once the broker has the record."""
        try:
            await self._producer.send_and_wait(self.topic, value, key=key.encode(), partition=0)
        except KafkaError as exc:
            raise LogUnavailable(f"appending to {self.topic} failed: {exc}") from None

    async def put_last(self, topic: str, key: bytes, value: bytes) -> None:
        """Hand a record for partition 0 of a side topic (e.g. snapshots) to the producer."""
        try:
            await self._producer.send(topic, value, key=key, partition=0)
        except KafkaError as exc:
            raise LogUnavailable(f"writing to {topic} failed: {exc}") from None

    async def last_records(self, topic: str) -> list[bytes]:
        """The last record of partition 0 of `topic` (read from its end), or none at all.
        Leaves the consumer assigned to `topic`: call `read_from` before reading this log."""
        tp = TopicPartition(topic, 0)
        try:
            if topic not in await self._consumer.topics():
                return []
            self._consumer.assign([tp])
            end = (await self._consumer.end_offsets([tp]))[tp]
            if end == 0:
                return []
            self._consumer.seek(tp, end - 1)
            batches = await self._consumer.getmany(tp, timeout_ms=LAST_RECORD_WAIT_MS)
        except KafkaError as exc:
            raise LogUnavailable(f"reading {topic} failed: {exc}") from None
        return [r.value or b"" for r in batches.get(tp, [])]
