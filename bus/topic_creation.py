"""Creating topics on a cluster that may refuse them for a moment.

Kafka answers CreateTopics with an error per topic, in a response that does not raise. A
brand-new Kafka logs "Kafka Server started" (what its launcher waits for) a moment before its
controller unfences the broker; a CreateTopics in between is refused with
INVALID_REPLICATION_FACTOR ("All brokers are currently fenced"), and a topic refused then
would later be auto-created on first use with the broker's default partitions, or not at all.
Refusals that pass are asked again until a deadline; the others are a one-line error.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any, Protocol

from aiokafka.admin import NewTopic
from aiokafka.errors import KafkaError, for_code

from schemas.errors import ConfigError

log = logging.getLogger(__name__)

TOPIC_ALREADY_EXISTS = 36
INVALID_REPLICATION_FACTOR = 38  # also "All brokers are currently fenced" on a new cluster
RETRY_S = 0.1


class TopicAdmin(Protocol):
    async def create_topics(self, new_topics: list[NewTopic]) -> Any: ...


def refusals(topic_errors: Iterable[tuple[Any, ...]]) -> dict[str, tuple[int, str]]:
    """Topics Kafka did not create, with its error code and message (an existing one is fine)."""
    refused = {}
    for topic, code, *message in topic_errors:
        if code not in (0, TOPIC_ALREADY_EXISTS):
            refused[topic] = (code, (message[0] if message else None) or for_code(code).__name__)
    return refused


def may_pass(code: int) -> bool:
    return code == INVALID_REPLICATION_FACTOR or bool(getattr(for_code(code), "retriable", False))


async def create_missing_topics(
    admin: TopicAdmin, new: list[NewTopic], timeout_s: float
) -> dict[str, str]:
    """Create `new`, asking again for topics refused for a reason that may pass; the topics
    still refused at the deadline, with Kafka's reason. ConfigError for a refusal that will not
    pass (a bad setting, no permission)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    pending = {topic.name: topic for topic in new}
    while True:
        try:
            response = await admin.create_topics(list(pending.values()))
        except KafkaError as exc:  # the request itself failed (not a topic's refusal)
            if not exc.retriable:
                log.debug("create_topics: %r", exc)
                return {}
            refused = {name: (-1, repr(exc)) for name in pending}
        else:
            refused = refusals(response.topic_errors)
        final = {name: why for name, (code, why) in refused.items() if not may_pass(code)}
        if final:
            name, why = sorted(final.items())[0]
            raise ConfigError(f"Kafka refused to create topic {name}: {why}")
        pending = {name: pending[name] for name in refused if name in pending}
        if not pending:
            return {}
        if loop.time() >= deadline:
            return {name: refused[name][1] for name in pending}
        log.debug("Kafka refused %d topics for now (%s); asking again", len(pending), refused)
        await asyncio.sleep(RETRY_S)
