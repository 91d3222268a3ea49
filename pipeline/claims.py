"""Whether this worker still owns the record it works on: the one check before a call is sent.

A worker's claim on a record ends when its partition is revoked (a rebalance) or the worker
shuts down. From then on the record belongs to its next owner, who reads it again from the
committed offset, so nothing more may be paid for it here. The consumer gives each record's
task a `Claim` (a context variable, so the pipeline needs no Kafka types); the runner asks it
at the two places where a call could still be stopped for free:

- `admitted`: waiting behind a provider's limits. The consumer may cancel the task there: a
  record that paid for nothing yet is then simply left (nothing was sent, nothing held); one
  whose earlier calls were paid gets `LetGoWhileWaiting` instead, so that it parks with them.
- `still_ours`, right before the HTTP send: a call that passes it is on the wire and is let
  finish; its rows are made durable before the partition is released.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from contextvars import ContextVar
from dataclasses import dataclass
from types import TracebackType
from typing import TypeVar

T = TypeVar("T")


class RecordReleased(Exception):  # a signal to the consumer, not an error
    """The record stopped being ours before anything was paid for it: leave it unacked."""


class LetGoWhileWaiting(Exception):  # a signal to the runner, not an error
    """The record stopped being ours while it waited for a provider's limits, after earlier
    calls were paid: nothing more is sent, and it parks with their rows."""


@dataclass
class Claim:
    """One record's hold on its partition, as the consumer sees it."""

    still_ours: Callable[[], bool]
    # True only while the record waits for admission: the consumer may cancel it there.
    cancellable: bool = False


_current: ContextVar[Claim | None] = ContextVar("frugal_claim", default=None)


def hold(claim: Claim) -> None:
    """Attach `claim` to the running task (each record runs in its own task)."""
    _current.set(claim)


def still_ours() -> bool:
    """False once the record's partition was revoked or the worker is shutting down."""
    claim = _current.get()
    return claim is None or claim.still_ours()


class _Admission(AbstractAsyncContextManager[T]):
    """`admitted` as a plain context manager: one fewer generator and exit stack per call."""

    def __init__(self, slot: AbstractAsyncContextManager[T], nothing_paid: bool) -> None:
        self._slot = slot
        self._nothing_paid = nothing_paid

    async def __aenter__(self) -> T:
        claim = _current.get()
        if claim is not None:
            claim.cancellable = True
        try:
            return await self._slot.__aenter__()
        except asyncio.CancelledError:
            if claim is None or claim.still_ours() or self._nothing_paid:
                raise
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()  # the cancel meant "let go": the runner parks the record
            raise LetGoWhileWaiting from None
        finally:
            if claim is not None:
                claim.cancellable = False

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool | None:
        return await self._slot.__aexit__(exc_type, exc, traceback)


def admitted(slot: AbstractAsyncContextManager[T], nothing_paid: bool) -> _Admission[T]:
    """Enter a provider's `slot`; while waiting for it, the record may be cancelled by its
    consumer (the limiter gives back what it took on cancellation). Cancelled once no longer
    ours after paying for calls, it raises LetGoWhileWaiting rather than losing their rows."""
    return _Admission(slot, nothing_paid)
