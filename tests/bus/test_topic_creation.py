"""Creating topics: a refusal that passes is asked again, any other is a one-line error.

Kafka refuses topics per topic, in a response that does not raise: a brand-new cluster refuses
every topic for the moment between saying it started and unfencing its broker, and a topic
refused then used to be left to auto-creation on first use (the broker's default partitions,
and NotLeaderForPartition warnings). The moment cannot be made on purpose, so its answer is
replayed here; a refusal that does not pass is asked of the real Kafka.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiokafka.admin import NewTopic
from support.kafka_kit import KafkaKitBroker

from bus.topic_creation import create_missing_topics
from bus.topics import KafkaUnavailable, ensure_topics
from schemas.config import KafkaConfig
from schemas.errors import ConfigError

FENCED = (38, "All brokers are currently fenced.")


class ReplayedAdmin:
    """Answers CreateTopics with recorded per-topic errors, one answer per request."""

    def __init__(self, *answers: dict[str, tuple[int, str | None]]) -> None:
        self.answers = list(answers)
        self.asked: list[list[str]] = []

    async def create_topics(self, new_topics: list[NewTopic]) -> Any:
        self.asked.append([t.name for t in new_topics])
        answer = self.answers.pop(0)
        errors = [(t.name, *answer.get(t.name, (0, None))) for t in new_topics]
        return type("CreateTopicsResponse", (), {"topic_errors": errors})


def topics(*names: str) -> list[NewTopic]:
    return [NewTopic(name, 1, 1) for name in names]


async def test_topics_refused_while_the_broker_is_fenced_are_asked_again() -> None:
    admin = ReplayedAdmin({"a": FENCED, "b": FENCED}, {"b": FENCED}, {})
    assert await create_missing_topics(admin, topics("a", "b", "c"), timeout_s=5) == {}
    assert admin.asked == [["a", "b", "c"], ["a", "b"], ["b"]]


async def test_a_topic_that_exists_already_is_not_a_refusal() -> None:
    admin = ReplayedAdmin({"a": (36, "Topic with this name already exists.")})
    assert await create_missing_topics(admin, topics("a"), timeout_s=5) == {}
    assert len(admin.asked) == 1


async def test_a_refusal_that_will_not_pass_is_a_one_line_error() -> None:
    admin = ReplayedAdmin({"a": (40, "Invalid value x for configuration cleanup.policy")})
    with pytest.raises(ConfigError, match="refused to create topic a: Invalid value x"):
        await create_missing_topics(admin, topics("a", "b"), timeout_s=5)


async def test_a_refusal_still_there_at_the_deadline_is_returned() -> None:
    admin = ReplayedAdmin(*[{"a": FENCED}] * 100)
    refused = await create_missing_topics(admin, topics("a"), timeout_s=0.3)
    assert refused == {"a": "All brokers are currently fenced."}


async def test_kafka_refusing_a_replication_factor_is_said_not_hidden(
    real_kafka: KafkaKitBroker, prefix: str, tmp_path: Path
) -> None:
    """Two replicas on a one-broker Kafka: refused with the same code as a fenced broker, so
    it is asked again until the deadline, then said (before: the topics were left to
    auto-creation with one partition each, silently)."""
    kafka = KafkaConfig(topic_prefix=prefix, replication_factor=2)
    with pytest.raises(KafkaUnavailable, match="replication factor"):
        await ensure_topics(real_kafka.bootstrap, kafka, timeout_s=1.0)
