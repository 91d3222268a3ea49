"""The offset a worker commits never passes a record still in flight (faust's check is off by one)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import pytest
from faust.transport.consumer import Consumer
from intervaltree import IntervalTree

from consumers.offsets import (
    FAUST_NEW_OFFSET,
    ReadOffsets,
    already_taken,
    committable_offset,
    install,
)

TP = "jobs-0"


@dataclass(eq=False)
class Delivered:
    """A record handed to a stream: what faust keeps in `_unacked_messages`."""

    offset: int
    acked: bool = False
    tp: str = TP
    generation_id: int = 1


def consumer(committed: int | None, acked: list[int], in_flight: list[int]) -> Any:
    return SimpleNamespace(
        app=SimpleNamespace(consumer_generation_id=1),
        _acked={TP: list(acked)},
        _acked_index=defaultdict(set, {TP: set(acked)}),
        _gap=defaultdict(IntervalTree),
        _committed_offset={TP: committed},
        _unacked_messages={Delivered(o) for o in in_flight},
    )


# committed offset = the next one to read; `in_flight` were delivered and are not acked yet
CASES = [
    (10, [11, 12], [10], None),  # faust: 13, past record 10 still in flight
    (None, [1, 2, 3], [0], None),  # faust: 4, nothing committed yet
    (0, [1, 2], [0], None),  # faust: 3 (0 counts as "nothing committed")
    (10, [10, 11, 13], [12], 12),  # the acked run at the head only
    (None, [0, 1, 2], [], 3),
    (10, [12, 13], [], None),  # two undelivered offsets at the head: faust's check, kept
]


@pytest.mark.parametrize(("committed", "acked", "in_flight", "expected"), CASES)
def test_commits_only_below_the_first_record_in_flight(
    committed: int | None, acked: list[int], in_flight: list[int], expected: int | None
) -> None:
    assert committable_offset(consumer(committed, acked, in_flight), TP) == expected


def test_faust_alone_commits_past_a_record_in_flight() -> None:
    """Why the replacement exists; once faust gets this right, `consumers.offsets` can go."""
    assert FAUST_NEW_OFFSET(consumer(10, [11, 12], [10]), TP) == 13


def test_install_replaces_faust_check() -> None:
    install()
    assert Consumer._new_offset is committable_offset


def test_a_committed_run_leaves_the_rest_for_later() -> None:
    state = consumer(10, [10, 11, 13], [12])
    assert committable_offset(state, TP) == 12
    assert state._acked[TP] == [13]
    assert state._acked_index[TP] == {13}
    state._unacked_messages = set()
    state._committed_offset[TP] = 12
    state._acked[TP] = [12, 13]  # record 12 acked at last
    assert committable_offset(state, TP) == 14


def test_records_of_an_earlier_generation_do_not_hold_commits_back() -> None:
    state = consumer(None, [5, 6], [])
    state._unacked_messages = {Delivered(4, generation_id=0)}
    assert committable_offset(state, TP) == 7


def test_a_gap_faust_saw_is_not_counted_as_done() -> None:
    """faust drops fetched records (paused partition, rebalance mid-batch) and records the jump
    as a gap: those records were never answered, so no commit may pass them."""
    state = consumer(10, [10, 13], [])
    state._gap[TP].addi(11, 13)
    assert committable_offset(state, TP) == 11
    state._committed_offset[TP] = 11
    assert committable_offset(state, TP) is None  # 11 and 12 must be read again first


def test_a_single_dropped_offset_at_the_head_is_never_passed() -> None:
    state = consumer(10, [11, 12], [])
    for _ in range(3):  # however often the commit is tried
        assert committable_offset(state, TP) is None
    state._acked[TP].append(10)  # read again and answered
    assert committable_offset(state, TP) == 13


def test_a_record_read_again_is_skipped_when_answered_or_in_flight() -> None:
    state = consumer(10, [12], [11])
    in_flight = next(iter(state._unacked_messages))
    answered, running, new = Delivered(12), Delivered(11), Delivered(13)
    state._unacked_messages |= {answered, running, new}
    assert already_taken(state, Delivered(9))  # below the committed offset
    assert already_taken(state, answered) and answered not in state._unacked_messages
    assert already_taken(state, running) and running.acked
    assert not already_taken(state, new) and not already_taken(state, in_flight)


def test_a_partition_read_again_keeps_its_read_offset_at_the_hole() -> None:
    """faust drops fetched records below the read offset: the batch in hand, from far ahead,
    must not push it past the records a seek back reads again."""
    read = ReadOffsets(lambda: None)
    read[TP] = 144
    read.rereading[TP] = 12
    assert read[TP] == 12
    read[TP] = 300  # the rest of the batch in hand
    assert read[TP] == 12
    del read.rereading[TP]
    assert read[TP] == 300


class Unsearchable(set[Delivered]):
    """The records in flight, where any search through them fails the test."""

    def __iter__(self):  # type: ignore[no-untyped-def]
        raise AssertionError("searched the records in flight")


def test_records_in_order_are_not_searched_for_and_one_read_again_still_is() -> None:
    state = consumer(10, [], [])
    for offset in (10, 11, 12):
        record = Delivered(offset)
        assert not already_taken(state, record)
        state._unacked_messages.add(record)
    in_flight = set(state._unacked_messages)
    state._unacked_messages = Unsearchable(in_flight)
    assert not already_taken(state, Delivered(13))  # past all delivered: no search
    state._unacked_messages = in_flight
    assert already_taken(state, Delivered(11))  # read again by a seek back: found in flight
    assert not already_taken(state, Delivered(11, generation_id=2))  # a new generation's own
