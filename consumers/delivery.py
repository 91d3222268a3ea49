"""Handing fetched records to the streams without four asyncio tasks per record.

faust's fetcher loop delivers each record with
`await self.wait_first(callback(message), self.suspend_flow.wait())`, so that a delivery stuck
on a full stream buffer (or on suspended flow) is abandoned when a rebalance suspends the flow.
`wait_first` wraps each awaitable, and the consumer's stopped and crashed events, in a task of
its own, waits, then cancels three of them: measured as faust's largest per-record cost (about
a tenth of the worker's CPU per record at zero provider latency).

When nothing can make the delivery wait (flow active and not being suspended, producer buffer
below its limit, every stream buffer below full) the callback finishes without yielding, so
awaiting it directly means the same; otherwise faust's own `wait_first` runs unchanged.
"""

from __future__ import annotations

import asyncio
from typing import Any

from faust.app.base import App
from faust.sensors.monitor import Monitor
from faust.transport.consumer import Consumer
from faust.transport.producer import ProducerBuffer
from mode import Service
from mode.services import WaitResults

_EVENT_WAIT = asyncio.Event.wait.__code__  # faust's consumer.suspend_flow is an asyncio.Event


def _is_suspend_flow_wait(consumer: Any, awaitable: object) -> bool:
    """`awaitable` is `consumer.suspend_flow.wait()`, not started yet."""
    if getattr(awaitable, "cr_code", None) is not _EVENT_WAIT:
        return False
    frame = awaitable.cr_frame  # type: ignore[attr-defined]
    return frame is not None and frame.f_locals.get("self") is consumer.suspend_flow


def can_deliver_without_waiting(consumer: Any) -> bool:
    """Nothing the delivery callback checks would make it wait right now."""
    app = consumer.app
    if consumer.should_stop or consumer.suspend_flow.is_set() or not app.flow_control.is_active():
        return False
    buffer = app.producer.buffer
    if buffer.size > buffer.max_messages:
        return False
    return not any(queue.full() for queue in _stream_queues(app.flow_control))


def _stream_queues(flow_control: Any) -> list[Any]:
    """The streams' buffers (a WeakSet faust fills as streams start), copied once per change
    instead of iterated per record."""
    live = flow_control._queues
    count, queues = getattr(flow_control, "_frugal_queues", (-1, []))
    if count != len(live):
        queues = list(live)
        flow_control._frugal_queues = (len(queues), queues)
    return queues


async def wait_first(self: Any, *coros: Any, timeout: float | None = None) -> WaitResults:
    """`Service.wait_first`, with the fetcher's delivery awaited directly when it cannot wait."""
    if (
        len(coros) == 2
        and timeout is None
        and hasattr(coros[0], "__await__")  # an awaitable (an ABC check costs more)
        and _is_suspend_flow_wait(self, coros[1])
        and can_deliver_without_waiting(self)
    ):
        coros[1].close()  # never started: nothing to cancel
        result = await coros[0]
        return WaitResults([coros[0]], [result], False)
    return await Service.wait_first(self, *coros, timeout=timeout)  # type: ignore[arg-type]


def _buffer_size(buffer: ProducerBuffer) -> int:
    """`ProducerBuffer.size`, reading the app's `producer_threaded` setting once per buffer:
    faust reads it through its settings registry (~0.8 us) two or three times a record."""
    threaded = buffer.__dict__.get("_frugal_threaded")
    if threaded is None:
        threaded = buffer.__dict__["_frugal_threaded"] = bool(buffer.app.conf.producer_threaded)  # type: ignore[union-attr]
    if threaded:
        return len(buffer.queue._queue) if buffer.queue else 0  # type: ignore[attr-defined]
    return len(buffer.pending._queue)  # type: ignore[attr-defined]


def _create_event(self: App, key: Any, value: Any, headers: Any, message: Any) -> Any:
    """`App.create_event` with the app's Event class looked up once, not once a record."""
    event_type: Any = self.__dict__.get("_frugal_event_type")
    if event_type is None:
        event_type = self.__dict__["_frugal_event_type"] = self.conf.Event
    return event_type(self, key, value, headers, message)


def install() -> None:
    """Use the fast paths in every faust app of this process (idempotent)."""
    Consumer.wait_first = wait_first  # type: ignore[method-assign,assignment]
    ProducerBuffer.size = property(_buffer_size)  # type: ignore[assignment,method-assign]
    App.create_event = _create_event  # type: ignore[method-assign,assignment]


class QuietMonitor(Monitor):
    """faust's Monitor without its per-record bookkeeping (counters, timings, offsets by
    partition, ~10 us a record), which nothing here reads: the worker keeps its own metrics.
    Commits, end offsets and everything else are still tracked as faust does."""

    def on_message_in(self, tp: Any, offset: int, message: Any) -> None:
        return None

    def on_stream_event_in(self, tp: Any, offset: int, stream: Any, event: Any) -> dict | None:
        return None

    def on_stream_event_out(
        self, tp: Any, offset: int, stream: Any, event: Any, state: dict | None = None
    ) -> None:
        return None

    def on_message_out(self, tp: Any, offset: int, message: Any) -> None:
        return None
