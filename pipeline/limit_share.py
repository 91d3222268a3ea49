"""This worker's share of the group's provider limits, from the partitions it was assigned.

A provider's `rpm` and `tpm` are the account's limits, for the whole consumer group: each worker
paces itself at its share of them. The share is the worker's part of the group's partitions:
the partitions of its subscribed topics it holds over all their partitions. faust assigns topics
with the same partition count copartitioned (partition i of every job topic goes to one worker),
so this is also its share of the work when job keys spread evenly. It is recomputed on every
rebalance, from the new assignment and the partition counts in the consumer's metadata; a worker
alone in its group, or holding every partition, takes the whole limit.

`max_concurrency` is not split: it bounds one process's open calls (its sockets and memory), and
providers limit rates, not connections; a group of N workers can have N x max_concurrency calls
open.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol


class TopicPartitionLike(Protocol):
    @property
    def topic(self) -> str: ...


def partition_share(
    assignment: Iterable[TopicPartitionLike],
    topics: Iterable[str],
    partitions_of: Callable[[str], int | None],
) -> float | None:
    """Held partitions of `topics` over all of theirs; None when the counts are unknown."""
    wanted = set(topics)
    held = sum(1 for tp in assignment if tp.topic in wanted)
    counts = [partitions_of(topic) for topic in wanted]
    if any(c is None for c in counts):
        return None
    total = sum(c for c in counts if c is not None)
    return held / total if total else None


def describe_share(share: float) -> str:
    return f"this worker paces itself at {share:.0%} of each provider's rpm/tpm"
