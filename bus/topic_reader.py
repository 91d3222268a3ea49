"""Reading every partition of a topic from its beginning, without joining a group."""

from __future__ import annotations

import contextlib

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError

from bus.partition_log import LogUnavailable


class TopicReader:
    """Reads `topic` from the earliest offset on; `read` returns what arrived since the last."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.topic = topic
        self._consumer = AIOKafkaConsumer(
            topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest",
            enable_auto_commit=False,
        )  # fmt: skip

    async def start(self) -> None:
        await self._consumer.start()

    async def stop(self) -> None:
        with contextlib.suppress(KafkaError, OSError):
            await self._consumer.stop()

    async def read(self, timeout_ms: int, max_records: int) -> list[bytes]:
        try:
            batch = await self._consumer.getmany(timeout_ms=timeout_ms, max_records=max_records)
        except KafkaError as exc:
            raise LogUnavailable(f"reading {self.topic} failed: {exc}") from None
        return [record.value or b"" for records in batch.values() for record in records]
