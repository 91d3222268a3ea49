"""Which offset a worker may commit: never past a record whose answer is not durable.

Records are acked out of order (each runs in its own task, acked once durable). The only offset
that is safe to commit is the end of the run of acked offsets that starts exactly at the
committed one: every offset in it has a durable result, dead letter or park. faust's own
`Consumer._new_offset` is looser in three ways that each lost records in the rebalance test:

- it lets a one-offset hole at the head pass (it reads the committed offset, the next one to
  read, as the last one processed), and any hole before the first commit;
- its fetch loop records jumps in offsets as "gaps" and counts them as done. A seek back
  resets faust's read offset while the batch in hand goes on from far ahead, so the next
  record looks like a jump over everything between (measured: a seek to 12 made a gap of
  13..144, committed past unanswered records); so does a record faust fetched and dropped.
  Our topics are plain (no compaction, no transactions), so every offset holds a record:
  gaps are never counted as done here;
- on revoke it forgets the committed offset and the acks before the handover's last commit
  runs, so that commit started from nothing and passed whatever was dropped.

A hole at the head is filled by reading the partition again from the committed offset (a
seek); records read again that are already answered or still in flight are skipped
(`already_taken`), so a seek pays for nothing twice. `install()` puts all this in place.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from typing import Any

from faust.transport.consumer import CONSUMER_PARTITIONS_REVOKED, Consumer
from mode import Service

log = logging.getLogger("frugal.worker")

FAUST_INIT = Consumer.__init__
FAUST_NEW_OFFSET = Consumer._new_offset  # faust's own, kept for the test that shows the bug
FAUST_ACK = Consumer.ack
RESEEK_AFTER_S = 2.0  # a hole still there this long after a seek: read the partition again


def _generation(consumer: Any) -> Any:
    return getattr(consumer.app, "consumer_generation_id", None)


def _in_flight_before(consumer: Any, tp: Any, offset: int) -> bool:
    """A record of `tp` below `offset` was handed to a stream and not acked yet."""
    generation = _generation(consumer)
    return any(
        message.tp == tp
        and not message.acked
        and message.offset < offset
        and getattr(message, "generation_id", generation) == generation
        for message in list(consumer._unacked_messages)
    )


def _seek_back(consumer: Any, tp: Any, committed: int, head: int) -> None:
    """Offsets [committed, head) were not answered and none is in flight: faust dropped them.
    Read the partition again from `committed` (at most every RESEEK_AFTER_S)."""
    sought: dict[Any, float] = consumer.__dict__.setdefault("_frugal_sought", {})
    now = time.monotonic()
    if now - sought.get(tp, -RESEEK_AFTER_S) < RESEEK_AFTER_S or not _may_seek(consumer, tp):
        return  # mid-rebalance a seek upsets faust; the next commit tries again
    sought[tp] = now
    _rereading(consumer)[tp] = committed
    log.info(
        "reading %s again from %d: offsets up to %d were dropped unanswered",
        tp,
        committed,
        head - 1,
    )
    with contextlib.suppress(RuntimeError):  # no running loop: a unit test
        asyncio.get_running_loop().create_task(_reread(consumer, tp, committed))


class ReadOffsets(defaultdict[Any, Any]):
    """faust's last-read offset per partition. Its fetch loop drops a record below it, so after
    a seek back the rest of the batch in hand (from far ahead) would make it drop the very
    records the seek reads again: while a partition is read again from `rereading[tp]`, the
    read offset is never above that."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.rereading: dict[Any, int] = {}

    def __getitem__(self, tp: Any) -> Any:
        offset = super().__getitem__(tp)
        floor = self.rereading.get(tp)
        return offset if floor is None or offset is None else min(offset, floor)


def _with_read_offsets(consumer: Any, *args: Any, **kwargs: Any) -> None:
    FAUST_INIT(consumer, *args, **kwargs)
    consumer._read_offset = ReadOffsets(lambda: None, consumer._read_offset)


def _rereading(consumer: Any) -> dict[Any, int]:
    read = getattr(consumer, "_read_offset", None)
    return read.rereading if isinstance(read, ReadOffsets) else {}


def _may_seek(consumer: Any, tp: Any) -> bool:
    """Not mid-rebalance (a seek then upsets faust) and still assigned."""
    try:
        return bool(consumer.app.flow_control.is_active()) and tp in consumer.assignment()
    except Exception:  # not a running faust consumer (a unit test)
        return True


async def _reread(consumer: Any, tp: Any, offset: int) -> None:
    try:
        await consumer.seek(tp, offset)
    except Exception as exc:  # no longer assigned (a rebalance): its next owner reads it anyway
        log.debug("could not seek %s to %d: %r", tp, offset, exc)


def committable_offset(consumer: Any, tp: Any) -> int | None:
    """The offset to commit for `tp` (one past the acked run at its head), or None for now."""
    acked: list[int] = consumer._acked[tp]
    consumer._gap.pop(tp, None)  # a gap is offsets faust dropped, not offsets done
    if not acked:
        return None
    acked.sort()
    head = acked[0]
    committed = consumer._committed_offset[tp]
    if committed is not None and head > committed:
        if not _in_flight_before(consumer, tp, head):
            _seek_back(consumer, tp, committed, head)
        return None  # never past an offset that has no durable answer
    _rereading(consumer).pop(tp, None)  # no hole at the head (any more)
    if committed is None and _in_flight_before(consumer, tp, head):
        return None  # nothing committed yet: the head is only known from what is in flight
    end = 0
    while end + 1 < len(acked) and acked[end + 1] == acked[end] + 1:
        end += 1
    run = acked[: end + 1]
    del acked[: end + 1]
    consumer._acked_index[tp].difference_update(run)
    return run[-1] + 1


def _may_be_read_again(consumer: Any, tp: Any, offset: int, generation: Any) -> bool:
    """`offset` is not above the highest offset of `tp` delivered before in this generation
    (or none is known yet): only then can another record in flight have the same offset.
    Records of a partition arrive in order except after a seek back, so this spares the
    search through every record in flight for all but the records read again."""
    delivered: dict[Any, tuple[Any, int]] = consumer.__dict__.setdefault("_frugal_delivered", {})
    known = delivered.get(tp)
    fresh = known is not None and known[0] == generation and offset > known[1]
    if known is None or known[0] != generation or offset > known[1]:
        delivered[tp] = (generation, offset)
    return not fresh


def already_taken(consumer: Any, message: Any) -> bool:
    """`message` was read again (a seek back to a hole) but is answered or in flight already:
    skip it, and stop tracking it so that it holds no commit back."""
    tp, offset = message.tp, message.offset
    committed = consumer._committed_offset.get(tp)
    taken = (committed is not None and offset < committed) or offset in consumer._acked_index[tp]
    generation = getattr(message, "generation_id", None)
    if not taken and _may_be_read_again(consumer, tp, offset, generation):
        taken = any(
            other is not message
            and other.tp == tp
            and other.offset == offset
            and not other.acked
            and getattr(other, "generation_id", None) == generation
            for other in list(consumer._unacked_messages)
        )
    if taken:
        message.acked = True
        consumer._unacked_messages.discard(message)
    return taken


def _ack_of_this_generation(consumer: Any, message: Any) -> bool:
    """faust's `ack`, for records read in the current generation only."""
    if getattr(message, "generation_id", _generation(consumer)) != _generation(consumer):
        message.acked = True  # its next owner reads it again
        return False
    return bool(FAUST_ACK(consumer, message))


async def _no_gaps(consumer: Any, tp: Any, offset_from: int, offset_to: int) -> None:
    """faust's fetch loop calls this on a jump in offsets; nothing is done until seen."""


@Service.transitions_to(CONSUMER_PARTITIONS_REVOKED)
async def _revoke_after_handover(consumer: Any, revoked: Any) -> None:
    """faust's `on_partitions_revoked`, but the committed offsets and acks of `revoked` are
    forgotten only after the handover (our signal handler) made its last commit from them."""
    if consumer._active_partitions is not None:
        consumer._active_partitions.difference_update(revoked)
    consumer._paused_partitions.difference_update(revoked)
    try:
        await consumer._on_partitions_revoked(revoked)
    finally:
        for tp in revoked:
            for table in (consumer._gap, consumer._acked, consumer._acked_index):
                table.pop(tp, None)
            consumer._read_offset.pop(tp, None)
            _rereading(consumer).pop(tp, None)
            consumer._committed_offset.pop(tp, None)


def install() -> None:
    """Use these rules for every faust consumer in this process (idempotent)."""
    Consumer.__init__ = _with_read_offsets  # type: ignore[method-assign,assignment]
    Consumer._new_offset = committable_offset  # type: ignore[method-assign,assignment]
    Consumer.ack = _ack_of_this_generation  # type: ignore[method-assign,assignment]
    Consumer._add_gap = _no_gaps  # type: ignore[method-assign,assignment]
    Consumer.on_partitions_revoked = _revoke_after_handover  # type: ignore[method-assign,assignment]
