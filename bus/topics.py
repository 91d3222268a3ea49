"""Kafka topics: names, and creating every one explicitly (with partitions) at start."""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, KafkaError

from bus.topic_creation import create_missing_topics
from schemas.config import JOB_KINDS, KafkaConfig
from schemas.errors import FrugalError

log = logging.getLogger(__name__)


class KafkaUnavailable(FrugalError):
    type = "kafka_unavailable"


def job_topic(kafka: KafkaConfig, kind: str) -> str:
    return kafka.topic(kind)


def dlq_topic(kafka: KafkaConfig, kind: str) -> str:
    return kafka.topic(kind, "dlq")


def retry_topic(kafka: KafkaConfig) -> str:
    return f"{kafka.topic_prefix}.retry"


def spend_topic(kafka: KafkaConfig) -> str:
    return f"{kafka.topic_prefix}.spend"


def spend_snapshot_topic(kafka: KafkaConfig) -> str:
    return f"{spend_topic(kafka)}.snapshots"


def published_topic(kafka: KafkaConfig) -> str:
    return f"{kafka.topic_prefix}.published"


def batches_topic(kafka: KafkaConfig) -> str:
    """Submitted provider batches: the worker that owns a record polls that batch."""
    return f"{kafka.topic_prefix}.batches"


def all_topics(kafka: KafkaConfig) -> list[str]:
    topics = [job_topic(kafka, k) for k in JOB_KINDS]
    topics += [dlq_topic(kafka, k) for k in JOB_KINDS]
    topics += [retry_topic(kafka), spend_topic(kafka), spend_snapshot_topic(kafka)]
    return [*topics, published_topic(kafka), batches_topic(kafka)]


LEADER_POLL_S = 0.1


async def ensure_topics(
    bootstrap: str, kafka: KafkaConfig, timeout_s: float = 30.0
) -> dict[str, int]:
    """Create every topic Frugal uses and wait until each partition's leader serves it (a first
    publish to a new topic on Kafka otherwise meets NotLeaderForPartition); topics that exist
    are left as they are. Returns each topic's real partition count."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    try:
        await asyncio.wait_for(admin.start(), timeout_s)
    except (TimeoutError, KafkaConnectionError, OSError) as exc:
        raise KafkaUnavailable(f"cannot reach Kafka at {bootstrap}: {exc or 'timed out'}") from None
    try:
        wanted = all_topics(kafka)
        existing = set(await admin.list_topics())
        missing = [t for t in wanted if t not in existing]
        if missing:
            new = [_new_topic(t, kafka) for t in missing]
            if refused := await create_missing_topics(admin, new, timeout_s):
                name, why = sorted(refused.items())[0]
                raise KafkaUnavailable(f"Kafka did not create topic {name} in time: {why}")
        counts = await _partitions_once_led(admin, wanted, timeout_s)
    finally:
        await admin.close()
    await _until_leaders_serve(bootstrap, counts, timeout_s)
    return counts


async def _until_leaders_serve(bootstrap: str, counts: dict[str, int], timeout_s: float) -> None:
    """Metadata names a new partition's leader a moment before the leader serves it: ask each
    one for its end offset (retried quietly) so that a first publish is not refused."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(t, p) for t, n in counts.items() for p in range(n)]
        # Metadata first: asked for topics it has no metadata for, aiokafka's end_offsets
        # waits out its own refresh (measured 1.3 s on Kafka 3.1, on every worker start).
        await asyncio.wait_for(consumer._client.force_metadata_update(), timeout_s)
        await asyncio.wait_for(consumer.end_offsets(tps), timeout_s)
    except (TimeoutError, KafkaError) as exc:
        log.debug("partition leaders not all serving yet: %r", exc)
    finally:
        await consumer.stop()


async def _partitions_once_led(
    admin: AIOKafkaAdminClient, topics: list[str], timeout_s: float
) -> dict[str, int]:
    """Each topic's partition count, once every partition has a leader (or at the deadline)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        counts: dict[str, int] = {}
        led = True
        for topic in await admin.describe_topics(topics):
            partitions = topic.get("partitions") or []
            counts[topic["topic"]] = len(partitions)
            led &= topic.get("error_code", 0) == 0 and bool(partitions)
            led &= all(p.get("leader", -1) >= 0 and p.get("error_code", 0) == 0 for p in partitions)
        if led or loop.time() >= deadline:
            return counts
        await asyncio.sleep(LEADER_POLL_S)


async def wait_for_group_coordinator(
    bootstrap: str, group_id: str, timeout_s: float = 30.0
) -> None:
    """Until Kafka names the group's coordinator: on a new cluster it first has to create its
    offsets topic, and consumers that join before then log GroupCoordinatorNotAvailable."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            try:
                await admin.find_coordinator(group_id)
                return
            except KafkaError as exc:
                if loop.time() >= deadline:
                    log.debug("no group coordinator yet: %r", exc)
                    return  # the consumer's own retries take it from here
                await asyncio.sleep(LEADER_POLL_S)
    finally:
        await admin.close()


def partition_mismatches(kafka: KafkaConfig, counts: dict[str, int]) -> list[str]:
    """One line per existing topic whose partition count differs from the configuration."""
    lines = []
    for topic, count in sorted(counts.items()):
        expected = _new_topic(topic, kafka).num_partitions
        if count != expected:
            lines.append(
                f"{topic}: {count} partition{'s' if count != 1 else ''}, not {expected} as "
                "configured (it existed before; Kafka keeps a topic's partitions as created)"
            )
    return lines


def _new_topic(name: str, kafka: KafkaConfig) -> NewTopic:
    if name == spend_topic(kafka):
        # One ordered log that every worker replays (pipeline.spend): one partition, and kept
        # for good, since "total" and "month" caps are summed from its first record.
        return NewTopic(name, 1, kafka.replication_factor, topic_configs={"retention.ms": "-1"})
    if name == spend_snapshot_topic(kafka):
        # Only the latest snapshot of the spend book matters (pipeline.spend_snapshot).
        config = {"cleanup.policy": "compact", "retention.ms": "-1"}
        return NewTopic(name, 1, kafka.replication_factor, topic_configs=config)
    if name == published_topic(kafka):
        # Ids already published (bus.known_ids): one record per id, kept by compaction.
        configs = {"cleanup.policy": "compact"}
        return NewTopic(name, 1, kafka.replication_factor, topic_configs=configs)
    return NewTopic(name, kafka.partitions, kafka.replication_factor)
