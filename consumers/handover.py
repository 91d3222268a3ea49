"""Handing partitions over on a rebalance without paying for anything twice.

A revoke ends the claims of the records read from the partitions being let go: records waiting
for a provider's limits or sleeping in a retry backoff stop at once (left unacked, or parked
with their paid calls), calls on the wire finish, and their rows are durable and committed
before the partitions go. An assignment re-splits the providers' limits and reads which jobs
the partitions' last owners answered.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import faust

from consumers.pipeline_port import WorkerPipeline
from pipeline import claims
from pipeline.limit_share import describe_share, partition_share
from schemas.config import Config

log = logging.getLogger("frugal.worker")


def describe_partitions(partitions: Iterable[Any]) -> str:
    """`topic[0,1] other[2]` for topic-partitions (anything with .topic and .partition)."""
    by_topic: defaultdict[str, list[int]] = defaultdict(list)
    for tp in partitions:
        by_topic[tp.topic].append(tp.partition)
    if not by_topic:
        return "no partitions"
    return " ".join(
        f"{topic}[{','.join(map(str, sorted(numbers)))}]"
        for topic, numbers in sorted(by_topic.items())
    )


class PartitionHandover:
    """The rebalance half of `consumers.worker.StreamWorker`, over the worker's state."""

    app: faust.App
    config: Config
    pipeline: WorkerPipeline  # attached by the worker, possibly after the group join began
    _in_flight: dict[asyncio.Task[None], claims.Claim]
    _epochs: defaultdict[tuple[str, int], int]
    _revoking: int
    _accepting: bool
    _left: list[Any]

    @property
    def topics(self) -> list[str]:
        raise NotImplementedError  # the worker's

    async def _commit(self) -> None:
        raise NotImplementedError  # the worker's

    _share: float | None = None  # of the providers' limits, worked out before a pipeline came

    @property
    def _attached(self) -> bool:
        return hasattr(self, "pipeline")

    def _on_attached(self) -> None:
        """A rebalance may come before the pipeline: what it found out is handed on now."""
        if self._share is not None:
            self.pipeline.set_group_share(self._share)

    def _claim(self, event: faust.EventT[Any]) -> claims.Claim:
        """The record is ours until its partition's epoch moves on or the worker stops."""
        key = (event.message.topic, event.message.partition)
        epoch = self._epochs[key]
        return claims.Claim(lambda: self._accepting and self._epochs[key] == epoch)

    async def _on_partitions_revoked(self, sender: object, revoked: Any, **_: Any) -> None:
        """Hand partitions over without paying for anything twice: records not yet sent are
        left to the next owner, calls on the wire finish, and their rows are durable and
        committed before the partitions go."""
        if not revoked or not self._attached:
            return  # no pipeline yet: no record was taken
        started = time.monotonic()
        self._revoking += 1
        try:
            await self._let_go(revoked, self.config.kafka.session_timeout_s / 2)
            await self.pipeline.settle(self._commit)
        except Exception:  # the handover is best effort: the done set catches what slips
            log.exception("could not settle work in flight before a rebalance")
        finally:
            self._revoking -= 1
            self.pipeline.hurry(not self._accepting)  # still on if shutting down meanwhile
            took = time.monotonic() - started
            log.info("handed over %d partitions in %.2f s", len(revoked), took)

    async def _let_go(
        self, partitions: Iterable[Any] | None, timeout_s: float
    ) -> set[asyncio.Task[None]]:
        """End the claims on `partitions` (None: all), cancel the records that paid nothing yet
        and wait for the rest; the tasks still running at the deadline."""
        if partitions is not None:
            keys = {(tp.topic, tp.partition) for tp in partitions}
            for key in keys:
                self._epochs[key] += 1
        self.pipeline.hurry(True)  # backoffs park on the retry topic instead of sleeping
        leaving = {t: c for t, c in self._in_flight.items() if not c.still_ours()}
        cancelled = [t for t, c in leaving.items() if c.cancellable and not t.done()]
        for task in cancelled:
            task.cancel()  # waiting for a provider's limits: left unacked, or parked if it paid
        if cancelled:
            log.info("stopped %d records waiting for a provider's limits", len(cancelled))
        if not leaving:
            return set()
        _, pending = await asyncio.wait(set(leaving), timeout=max(0.0, timeout_s))
        return pending

    def _leave(self, event: faust.EventT[Any]) -> None:
        """Not acked: redelivered to whoever owns the partition next; no commit passes it."""
        self._left.append(event.message)

    async def _on_partitions_assigned(self, sender: object, assigned: Any, **_: Any) -> None:
        """Partitions taken over may hold jobs their last owner answered but never committed."""
        self._left.clear()  # a new generation: the records left behind are read again
        log.info(
            "generation %s: %s", self.app.consumer_generation_id, describe_partitions(assigned)
        )
        self._take_share_of_limits()
        if self._attached:  # else the agents read it before their first record (_ready)
            await self.pipeline.refresh_done()

    def _take_share_of_limits(self) -> None:
        """Re-split the providers' rpm/tpm by the new assignment (pipeline.limit_share)."""
        consumer = self.app.consumer
        # The cluster metadata every member has (faust's topic_partitions is the leader's only).
        kafka = consumer._thread._ensure_consumer()  # type: ignore[attr-defined]

        def partitions_of(topic: str) -> int | None:
            return len(kafka.partitions_for_topic(topic) or ()) or None

        share = partition_share(consumer.assignment(), self.topics, partitions_of)
        if share is not None and share > 0:
            self._share = share
            if self._attached:
                self.pipeline.set_group_share(share)
            log.info("limits: %s", describe_share(share))
