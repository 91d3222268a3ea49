"""Which record ids were published before, and with what content: a compacted Kafka topic.

`<prefix>.published` holds one record per id (key = id, value = the content's hash and where
it came from). `frugal publish` reads it whole before publishing, so it can tell new records
from known ones (skipped: publishing the same file twice is free) and from conflicts (a known
id with different content: refused, never silently answered with the old result).

Why a topic rather than the lake: the lake only knows ids once they are answered, while a
second publish may come before the workers have run; the topic knows an id as soon as it is
published, needs no access to the lake, and compaction keeps it at one record per id.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition

from bus.producer import Producer
from bus.read_to_end import read_to_end


@dataclass(frozen=True)
class KnownId:
    content_hash: str
    source: str


async def read_known(bootstrap: str, topic: str, timeout_s: float = 30.0) -> dict[str, KnownId]:
    """Every id in the topic with its latest content hash (the topic must exist)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    known: dict[str, KnownId] = {}
    try:
        partitions = [TopicPartition(topic, 0)]  # created with one partition (bus.topics)
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        async with asyncio.timeout(timeout_s):
            async for record in read_to_end(consumer, partitions):
                _remember(known, record.key, record.value)
    finally:
        await consumer.stop()
    return known


def _remember(known: dict[str, KnownId], key: bytes | None, value: bytes | None) -> None:
    if key is None:
        return
    if value is None:  # a tombstone forgets the id
        known.pop(key.decode(), None)
        return
    try:
        data = json.loads(value)
        known[key.decode()] = KnownId(str(data["hash"]), str(data.get("source") or ""))
    except (ValueError, KeyError, TypeError):
        return


async def remember_published(
    producer: Producer, topic: str, entries: list[tuple[str, KnownId]]
) -> None:
    """Record ids once their records are in Kafka (a crash in between only republishes)."""
    for start in range(0, len(entries), 500):
        await producer.send_many(
            topic,
            [
                (job_id, json.dumps({"hash": k.content_hash, "source": k.source}).encode())
                for job_id, k in entries[start : start + 500]
            ],
        )
