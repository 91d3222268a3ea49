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

from typing import Any

from faust.transport.consumer import Consumer

FAUST_NEW_OFFSET = Consumer._new_offset  # faust's own, kept for the test that shows the bug


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


def committable_offset(consumer: Any, tp: Any) -> int | None:
    """The offset to commit for `tp` (one past the acked run at its head), or None for now."""
    acked: list[int] = consumer._acked[tp]
    if not acked:
        return None
    _fill_gaps(consumer, tp, acked)
    acked.sort()
    head = acked[0]
    committed = consumer._committed_offset[tp]
    if committed and head - committed > 1:
        return None  # faust's own check, kept: undelivered offsets at the head
    if _in_flight_before(consumer, tp, head):
        return None  # the check faust misses by one
    end = 0
    while end + 1 < len(acked) and acked[end + 1] == acked[end] + 1:
        end += 1
    run = acked[: end + 1]
    del acked[: end + 1]
    consumer._acked_index[tp].difference_update(run)
    return run[-1] + 1


def install() -> None:
    """Use `committable_offset` for every faust consumer in this process (idempotent)."""
    Consumer._new_offset = committable_offset  # type: ignore[method-assign,assignment]
