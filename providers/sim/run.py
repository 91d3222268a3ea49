"""Provider simulator: one aiohttp server speaking the OpenAI, Anthropic and Gemini wire formats.

Entry points: `start_sim` (in the running loop), `run_sim` (foreground, for `frugal sim`) and
`SimThread` (own thread and loop, for tests and benchmarks).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import signal
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from providers.sim.server import SimServer, route_of
from schemas.config import SimConfig

__all__ = ["SimServer", "SimThread", "route_of", "run_sim", "start_sim"]

T = TypeVar("T")


async def start_sim(
    config: SimConfig, host: str = "127.0.0.1", port: int = 0, *, strict_models: bool = False
) -> SimServer:
    """Start the simulator on `host:port` (0 = any free port) in the running event loop."""
    server = SimServer(config, strict_models=strict_models)
    await server.listen(host, port)
    return server


def run_sim(
    config: SimConfig,
    host: str = "127.0.0.1",
    port: int = 8089,
    on_ready: Callable[[SimServer], None] | None = None,
) -> None:
    """Run the simulator in the foreground until SIGINT/SIGTERM (`frugal sim`).

    `on_ready` is called once the port is bound (e.g. to print the base URL).
    """

    async def serve() -> None:
        server = await start_sim(config, host, port)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            # Not available off the main thread or on Windows; Ctrl-C still ends asyncio.run.
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        if on_ready is not None:
            on_ready(server)
        try:
            await stop.wait()
        finally:
            await server.stop()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())


class SimThread:
    """The simulator on its own thread and event loop, so it never shares the caller's loop.

    Use as a context manager: `with SimThread(SimConfig(rpm=600)) as sim: sim.base_url`.
    """

    def __init__(
        self,
        config: SimConfig | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        strict_models: bool = False,
    ) -> None:
        self._args = (config or SimConfig(), host, port, strict_models)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: SimServer | None = None
        self._stopped: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="frugal-sim", daemon=True)

    @property
    def server(self) -> SimServer:
        if self._server is None:
            raise RuntimeError("the simulator thread is not running")
        return self._server

    @property
    def base_url(self) -> str:
        return self.server.base_url

    @property
    def port(self) -> int:
        return self.server.port

    def start(self) -> SimThread:
        self._thread.start()
        if not self._ready.wait(timeout=30):
            raise RuntimeError("the simulator did not start within 30 s")
        if self._error is not None:
            raise RuntimeError(f"the simulator failed to start: {self._error}") from self._error
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stopped is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stopped.set)
            self._thread.join(timeout=30)

    def __enter__(self) -> SimThread:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def stats(self) -> dict[str, Any]:
        return self._in_loop(self.server.stats)

    def patch(self, **fields: Any) -> SimConfig:
        return self._in_loop(lambda: self.server.patch(**fields))

    def reset(self) -> None:
        self._in_loop(self.server.reset)

    def wait_for(
        self, condition: Callable[[dict[str, Any]], bool], timeout: float = 10.0
    ) -> dict[str, Any]:
        """Poll `/stats` until `condition(stats)` holds; the stats, or TimeoutError at the deadline.

        E.g. `sim.wait_for(lambda s: s["requests"] >= 50)` before taking the provider down.
        """
        deadline = time.monotonic() + timeout
        while True:
            stats = self.stats()
            if condition(stats):
                return stats
            if time.monotonic() > deadline:
                raise TimeoutError(f"simulator condition not met within {timeout} s: {stats}")
            time.sleep(0.01)

    def _in_loop(self, fn: Callable[[], T]) -> T:
        """Run `fn` on the simulator's loop, so it never races a request in flight."""
        if self._loop is None:
            raise RuntimeError("the simulator thread is not running")
        done: concurrent.futures.Future[T] = concurrent.futures.Future()

        def call() -> None:
            try:
                done.set_result(fn())
            except BaseException as exc:
                done.set_exception(exc)

        self._loop.call_soon_threadsafe(call)
        return done.result(timeout=30)

    def _run(self) -> None:
        config, host, port, strict = self._args
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            self._server = loop.run_until_complete(
                start_sim(config, host, port, strict_models=strict)
            )
            self._stopped = asyncio.Event()
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_until_complete(self._stopped.wait())
            loop.run_until_complete(self._server.stop())
        finally:
            loop.close()
