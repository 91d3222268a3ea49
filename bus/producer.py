"""Publishing records to Kafka and waiting until the broker has them."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError

from bus.topics import KafkaUnavailable

MAX_RECORD_BYTES = 8 * 1024 * 1024


class Producer:
    """A started aiokafka producer; `send` returns once the record is durable in Kafka.

    The aiokafka producer is made on `start`: one that never starts (a worker that fails
    before its pipeline starts) leaves nothing to close, and no "Unclosed" warning at exit.
    """

    def __init__(self, bootstrap: str) -> None:
        self._bootstrap = bootstrap
        self._producer: AIOKafkaProducer | None = None

    async def start(self) -> Producer:
        self._producer = AIOKafkaProducer(
            bootstrap_servers=self._bootstrap,
            acks="all",
            linger_ms=5,
            max_request_size=MAX_RECORD_BYTES,
            compression_type=None,
        )
        try:
            await self._producer.start()
        except (KafkaConnectionError, OSError) as exc:
            raise KafkaUnavailable(f"cannot reach Kafka: {exc}") from None
        return self

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()

    def _started(self) -> AIOKafkaProducer:
        if self._producer is None:
            raise RuntimeError("Producer.start() first")
        return self._producer

    async def send(self, topic: str, key: str | None, value: bytes) -> tuple[int, int]:
        """Send one record; returns its (partition, offset) once acknowledged."""
        producer = self._started()
        fut = await producer.send(topic, value=value, key=key.encode() if key else None)
        meta = await fut
        return meta.partition, meta.offset

    async def send_many(
        self, topic: str, records: Iterable[tuple[str | None, bytes]]
    ) -> list[tuple[int, int]]:
        producer = self._started()
        futures = [
            await producer.send(topic, value=value, key=key.encode() if key else None)
            for key, value in records
        ]
        metas = await asyncio.gather(*futures)
        return [(m.partition, m.offset) for m in metas]

    async def __aenter__(self) -> Producer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
