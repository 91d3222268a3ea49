"""A record as the stream worker hands it to the pipeline, and where it came from.

Kept apart from `pipeline.app` (which imports the providers, the lake and Arrow) so the worker
can join its consumer group before those imports, and do them while the broker holds the join.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

Commit = Callable[[], Awaitable[object]]  # the consumer's commit of acked offsets


@dataclass(frozen=True)
class RecordOrigin:
    """Where a record came from, kept on its dead letter."""

    kind: str
    topic: str
    partition: int
    offset: int
    key: str | None


@dataclass
class InboundRecord:
    origin: RecordOrigin
    value: bytes
    timestamp_ms: int | None
    ack: Callable[[], object]

    @property
    def created_at(self) -> datetime:
        if self.timestamp_ms:
            return datetime.fromtimestamp(self.timestamp_ms / 1000, UTC)
        return datetime.now(UTC)
