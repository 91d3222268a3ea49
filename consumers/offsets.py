"""Which offset a worker may commit: never past a record that is still being worked on.

Records are acked out of order (each runs in its own task, acked once durable), so the offset to
commit is the end of the acked run at a partition's head, and only when no record before that
run is still in flight. faust's own `Consumer._new_offset` gets the head check wrong: it treats
the committed offset (the next one to read) as the last one processed, so one in-flight record
at the head slips through, and any number of them before the first commit (committed is None
or 0). The worker then commits past a job it has not finished: a crash loses it, and
`--drain` ends before it is done. `install()` replaces the check with this one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from faust.transport.consumer import Consumer

log = logging.getLogger("frugal.worker")

FAUST_NEW_OFFSET = Consumer._new_offset  # faust's own, kept for the test that shows the bug
FAUST_ACK = Consumer.ack


def _fill_gaps(consumer: Any, tp: Any, acked: list[int]) -> None:
    """Offsets Kafka never delivered (compaction, transaction markers) count as acked."""
    gaps = consumer._gap[tp]
    if not gaps:
        return
    below = sorted(gaps.overlap(0, max(acked)), key=lambda interval: interval.begin)
    if below:
        filled = [offset for interval in below for offset in range(interval.begin, interval.end)]
        acked.extend(filled)
        gaps.chop(0, max(filled[-1], max(acked) + 1))


def _in_flight_before(consumer: Any, tp: Any, offset: int) -> bool:
    """A record of `tp` below `offset` was handed to a stream and not acked yet."""
    generation = getattr(consumer.app, "consumer_generation_id", None)
    return any(
        message.tp == tp
        and not message.acked
        and message.offset < offset
        and getattr(message, "generation_id", generation) == generation
        for message in list(consumer._unacked_messages)
    )


_reread_from: dict[Any, int] = {}  # tp -> the committed offset it was sought back to


def _tolerable_gap(consumer: Any, tp: Any, committed: int, head: int) -> bool:
    """Records at [committed, head) were not delivered. Around a rebalance faust's fetch loop
    drops records it reads while the flow is suspended, and stamps later ones of the same batch
    with the new generation: a hole that no record in flight reveals. Read the partition again
    from the committed offset, once; a single offset still missing after that is one Kafka
    never delivers (a transaction marker), which faust's own check lets pass."""
    if _reread_from.get(tp) != committed:
        if not _may_seek(consumer, tp):
            return False  # mid-rebalance: a seek now would upset faust; try at the next commit
        _reread_from[tp] = committed
        with contextlib.suppress(RuntimeError):  # no running loop: a unit test
            asyncio.get_running_loop().create_task(_reread(consumer, tp, committed))
        return False
    return head - committed == 1


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
        _reread_from.pop(tp, None)
        log.debug("could not seek %s to %d: %r", tp, offset, exc)
        return
    log.info("reading %s[%s] again from %d: records were skipped", tp.topic, tp.partition, offset)


def committable_offset(consumer: Any, tp: Any) -> int | None:
    """The offset to commit for `tp` (one past the acked run at its head), or None for now."""
    acked: list[int] = consumer._acked[tp]
    if not acked:
        return None
    _fill_gaps(consumer, tp, acked)
    acked.sort()
    head = acked[0]
    committed = consumer._committed_offset[tp]
    if committed and head > committed and not _tolerable_gap(consumer, tp, committed, head):
        return None  # offsets at the head never delivered in this generation
    if _in_flight_before(consumer, tp, head):
        return None  # the check faust misses by one
    end = 0
    while end + 1 < len(acked) and acked[end + 1] == acked[end] + 1:
        end += 1
    run = acked[: end + 1]
    del acked[: end + 1]
    consumer._acked_index[tp].difference_update(run)
    return run[-1] + 1


def _ack_of_this_generation(consumer: Any, message: Any) -> bool:
    """faust's `ack`, for records read in the current generation only."""
    generation = getattr(consumer.app, "consumer_generation_id", None)
    if getattr(message, "generation_id", generation) != generation:
        message.acked = True  # its next owner reads it again
        return False
    return bool(FAUST_ACK(consumer, message))


def install() -> None:
    """Use `committable_offset` for every faust consumer in this process (idempotent)."""
    Consumer._new_offset = committable_offset  # type: ignore[method-assign,assignment]
    Consumer.ack = _ack_of_this_generation  # type: ignore[method-assign,assignment]
