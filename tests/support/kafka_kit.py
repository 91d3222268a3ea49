"""A real Apache Kafka (KRaft) broker from the kit in ../shared/kafka, for tests that must hold on both brokers."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from bus.broker import free_port

KIT_ENV = "FRUGAL_TEST_KAFKA_KIT"
START_ATTEMPTS = 3
NOT_RUN = f"real-Kafka run not done: set {KIT_ENV} to the kit folder (.ci/run does where ../shared/kafka exists)"


def kit_dir() -> Path | None:
    """The kit folder named by the environment, or None when this run has no real Kafka."""
    value = os.environ.get(KIT_ENV, "").strip()
    if not value:
        return None
    path = Path(value)
    return path if (path / "bin" / "kafka-local").exists() else None


class KafkaKitBroker:
    """One single-node Kafka 3.1 broker on loopback, started and stopped with the kit's launcher."""

    def __init__(self, kit: Path, work_dir: Path) -> None:
        self.kit = kit
        self.work_dir = work_dir
        self.port = free_port()

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _launcher(self, *args: str) -> subprocess.CompletedProcess[str]:
        command = [str(self.kit / "bin" / "kafka-local"), *args, "--dir", str(self.work_dir)]
        return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)

    def start(self) -> KafkaKitBroker:
        """Start the broker; a failed start is tried again in a fresh folder (once in a full
        run the kit's `random-uuid` printed nothing under load, and formatting then failed)."""
        root, failures = self.work_dir, []
        for attempt in range(START_ATTEMPTS):
            self.work_dir = root / f"try{attempt}" if attempt else root
            done = self._launcher("start", "--port", str(self.port))
            if done.returncode == 0:
                return self
            failures.append(f"{done.stdout}{done.stderr}".strip())
            self._launcher("stop")
        raise RuntimeError(f"kafka-local start failed {START_ATTEMPTS} times: {failures[-1]}")

    def stop(self) -> None:
        self._launcher("stop")

    def __enter__(self) -> KafkaKitBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
