"""Kafka topics: names, and creating every one explicitly (with partitions) at start."""

from __future__ import annotations

import asyncio
import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, KafkaError

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


async def ensure_topics(bootstrap: str, kafka: KafkaConfig, timeout_s: float = 30.0) -> None:
    """Create every topic Frugal uses; topics that already exist are left as they are."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    try:
        await asyncio.wait_for(admin.start(), timeout_s)
    except (TimeoutError, KafkaConnectionError, OSError) as exc:
        raise KafkaUnavailable(f"cannot reach Kafka at {bootstrap}: {exc or 'timed out'}") from None
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in all_topics(kafka) if t not in existing]
        if missing:
            new = [_new_topic(t, kafka) for t in missing]
            try:
                await admin.create_topics(new)
            except KafkaError as exc:  # created concurrently by another process
                log.debug("create_topics: %s", exc)
    finally:
        await admin.close()


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
        # Ids already published (pipeline.known_ids): one record per id, kept by compaction.
        configs = {"cleanup.policy": "compact"}
        return NewTopic(name, 1, kafka.replication_factor, topic_configs=configs)
    return NewTopic(name, kafka.partitions, kafka.replication_factor)
