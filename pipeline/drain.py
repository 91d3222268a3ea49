"""`--drain`: knowing when everything that was on the topics at start is done and committed."""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaConsumer, TopicPartition

log = logging.getLogger("frugal.drain")


class DrainWatch:
    """Targets = end offsets at start, raised by what this worker feeds back to its topics."""

    def __init__(self, bootstrap: str, group_id: str, topics: list[str]) -> None:
        self._bootstrap = bootstrap
        self._group_id = group_id
        self._topics = topics
        self.targets: dict[TopicPartition, int] = {}
        self._consumer: AIOKafkaConsumer | None = None

    async def start(self) -> None:
        # Reads the group's committed offsets without joining it (nothing is subscribed).
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap, group_id=self._group_id, enable_auto_commit=False
        )
        await self._consumer.start()
        tps = await self._partitions()
        self.targets = await self._true_end_offsets(tps)
        log.info("drain: %d records to do at start", sum(self.targets.values()))

    async def _partitions(self) -> list[TopicPartition]:
        assert self._consumer is not None
        tps: list[TopicPartition] = []
        for topic in self._topics:
            parts = self._consumer.partitions_for_topic(topic)
            if parts is None:
                await self._consumer._client.force_metadata_update()  # first sight of the topic
                parts = self._consumer.partitions_for_topic(topic) or set()
            tps.extend(TopicPartition(topic, p) for p in sorted(parts))
        return tps

    async def _true_end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        """End offsets, read past the reported ones: Tansu reports its last batch's base offset."""
        assert self._consumer is not None
        ends = dict(await self._consumer.end_offsets(tps))
        self._consumer.assign(tps)
        for tp in tps:
            self._consumer.seek(tp, ends[tp])
        while batch := await self._consumer.getmany(timeout_ms=300, max_records=10_000):
            for tp, records in batch.items():
                ends[tp] = max(ends[tp], records[-1].offset + 1)
        self._consumer.unsubscribe()
        return ends

    def note_produced(self, topic: str, partition: int, offset: int) -> None:
        tp = TopicPartition(topic, partition)
        self.targets[tp] = max(self.targets.get(tp, 0), offset + 1)

    async def remaining(self) -> int:
        """Records below the targets that the group has not committed yet."""
        assert self._consumer is not None
        left = 0
        for tp, target in self.targets.items():
            committed = await self._consumer.committed(tp) or 0
            left += max(0, target - committed)
        return left

    async def wait_done(self, poll_s: float = 0.25) -> None:
        while (left := await self.remaining()) > 0:
            log.debug("drain: %d records left", left)
            await asyncio.sleep(poll_s)

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
