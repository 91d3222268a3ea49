"""The broker's bounds on a consumer group's session timeout, checked before joining.

Apache Kafka refuses a join whose session timeout is outside `group.min.session.timeout.ms`
and `group.max.session.timeout.ms`, and faust then retries the join forever: the worker would
hang without a word. Brokers that do not report their configuration (Tansu) are not checked.
"""

from __future__ import annotations

import asyncio
import contextlib

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError

from schemas.errors import ConfigError

DESCRIBE_TIMEOUT_S = 5.0
_MIN, _MAX = "group.min.session.timeout.ms", "group.max.session.timeout.ms"


async def session_timeout_bounds(bootstrap: str) -> tuple[float, float] | None:
    """(min, max) seconds the broker allows, or None when it does not say."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        await admin.start()
        cluster = await admin.describe_cluster()
        node = str(cluster["brokers"][0]["node_id"])
        resource = ConfigResource(ConfigResourceType.BROKER, node)
        responses = await asyncio.wait_for(admin.describe_configs([resource]), DESCRIBE_TIMEOUT_S)
    except (KafkaError, OSError, TimeoutError, LookupError):
        return None
    finally:
        with contextlib.suppress(KafkaError, OSError):
            await admin.close()
    values = {
        entry[0]: entry[1]
        for response in responses
        for resource_entry in response.resources
        for entry in resource_entry[4]
    }
    if _MIN not in values or _MAX not in values:
        return None
    return int(values[_MIN]) / 1000, int(values[_MAX]) / 1000


def check_session_timeout(session_timeout_s: float, bounds: tuple[float, float] | None) -> None:
    """A one-line ConfigError when the broker would refuse the group join."""
    if bounds is None:
        return
    low, high = bounds
    if not low <= session_timeout_s <= high:
        raise ConfigError(
            f"kafka.session_timeout_s = {session_timeout_s:g} is outside what this broker allows "
            f"({low:g}-{high:g} s, {_MIN} / {_MAX}): set it within that range"
        )
