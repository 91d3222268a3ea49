"""`--drain`: knowing when everything that was on the topics at start is done and committed."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from bus.read_to_end import read_to_end

log = logging.getLogger("frugal.drain")


class DrainWatch:
    """Targets = end offsets at start, raised by what this worker feeds back to its topics.

    Neither of its clients joins the group or even looks for its coordinator as a consumer:
    end offsets come from a group-less consumer, committed offsets from the admin API. (A
    consumer with a group id but no subscription trips over aiokafka's coordinator on a new
    Kafka cluster, whose offsets topic does not exist yet.)
    """

    def __init__(self, bootstrap: str, group_id: str, topics: list[str]) -> None:
        self._bootstrap = bootstrap
        self._group_id = group_id
        self._topics = topics
        self.targets: dict[TopicPartition, int] = {}
        self._consumer: AIOKafkaConsumer | None = None
        self._admin: AIOKafkaAdminClient | None = None
        self._committed_now = asyncio.Event()  # set by `nudge`: look again without waiting

    async def start(self) -> None:
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap, enable_auto_commit=False
        )
        await self._consumer.start()
        try:
            tps = await self._partitions()
            ends = await self._true_end_offsets(tps)
            # Records fed back while this ran (it runs beside the pipeline's start) count too.
            for tp, end in ends.items():
                self.targets[tp] = max(end, self.targets.get(tp, 0))
        finally:
            await self._consumer.stop()
        self._admin = AIOKafkaAdminClient(bootstrap_servers=self._bootstrap)
        await self._admin.start()
        log.info("drain: %d records to do at start", await self.remaining())

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
        async for record in read_to_end(self._consumer, tps, ends=dict(ends)):
            tp = TopicPartition(record.topic, record.partition)
            ends[tp] = max(ends[tp], record.offset + 1)
        return ends

    def note_produced(self, topic: str, partition: int, offset: int) -> None:
        tp = TopicPartition(topic, partition)
        self.targets[tp] = max(self.targets.get(tp, 0), offset + 1)

    async def _committed(self) -> dict[TopicPartition, int] | None:
        """The group's committed offsets; None while Kafka cannot say (no coordinator yet)."""
        assert self._admin is not None
        try:
            offsets = await self._admin.list_consumer_group_offsets(
                self._group_id, partitions=list(self.targets)
            )
        except KafkaError as exc:
            log.debug("drain: committed offsets not available yet: %r", exc)
            return None
        return {tp: meta.offset for tp, meta in offsets.items() if meta.offset >= 0}

    async def remaining(self) -> int:
        """Records below the targets that the group has not committed yet."""
        committed = await self._committed()
        if committed is None:
            return sum(self.targets.values())
        return sum(max(0, t - committed.get(tp, 0)) for tp, t in self.targets.items())

    def nudge(self) -> None:
        """This worker just committed: the next look need not wait out its poll interval."""
        self._committed_now.set()

    async def pause(self, poll_s: float) -> None:
        """Wait `poll_s` before looking again, or less if this worker commits meanwhile (the
        drain's last commit ends the wait at once instead of up to `poll_s` later)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._committed_now.wait(), poll_s)
        self._committed_now.clear()

    async def wait_done(self, poll_s: float = 0.25) -> None:
        while (left := await self.remaining()) > 0:
            log.debug("drain: %d records left", left)
            await self.pause(poll_s)

    async def stop(self) -> None:
        if self._admin is not None:
            await self._admin.close()
