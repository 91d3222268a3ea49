"""Reading partitions to their true end, on Apache Kafka and on Tansu alike.

Tansu reports a partition's end offset as the base offset of its last record batch, so a
reader that stops at the reported end can miss that whole batch. A partition counts as read
to its end here once the reader is past the reported end AND a poll comes back empty.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord

POLL_MS = 300
MAX_RECORDS = 10_000


async def read_to_end(
    consumer: AIOKafkaConsumer,
    partitions: list[TopicPartition],
    poll_ms: int = POLL_MS,
    ends: dict[TopicPartition, int] | None = None,
) -> AsyncIterator[ConsumerRecord[bytes, bytes]]:
    """Every record from the consumer's positions on `partitions` (assigned) to their end.
    `ends`: the reported end offsets when the caller already asked for them (asking twice
    costs a second round trip, and on Kafka 3.1 it can wait about a second)."""
    if ends is None:
        ends = await consumer.end_offsets(partitions)
    while True:
        batch = await consumer.getmany(*partitions, timeout_ms=poll_ms, max_records=MAX_RECORDS)
        for records in batch.values():
            for record in records:
                yield record
        if not batch and not [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
            return
