"""Servers a shared lake needs, started by the tests on loopback: moto's S3 and PostgreSQL."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

S3_KEY_ID = "frugal-test-key-id"
S3_SECRET = "frugal-test-secret-never-logged"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(
    port: int, process: subprocess.Popen[bytes], what: str, timeout: float = 30
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"{what} did not listen on {port} within {timeout}s")


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    bucket: str

    def env(self) -> dict[str, str]:
        return {
            "AWS_ACCESS_KEY_ID": S3_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": S3_SECRET,
            "AWS_REGION": "us-east-1",
        }


@contextmanager
def moto_s3(log: Path, bucket: str = "frugal-lake") -> Iterator[S3Server]:
    """moto in server mode: an S3-compatible HTTP endpoint, with one bucket created."""
    import boto3

    port = free_port()
    server = shutil.which("moto_server", path=str(Path(sys.executable).parent))
    command = [server] if server else [sys.executable, "-m", "moto.server"]
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*command, "-H", "127.0.0.1", "-p", str(port)], stdout=out, stderr=subprocess.STDOUT
        )
    try:
        wait_for_port(port, process, "moto_server")
        endpoint = f"http://127.0.0.1:{port}"
        s3 = boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id=S3_KEY_ID,
            aws_secret_access_key=S3_SECRET,
            region_name="us-east-1",
        )
        s3.create_bucket(Bucket=bucket)
        yield S3Server(endpoint, bucket)
    finally:
        process.terminate()
        process.wait(timeout=10)


def postgres_bin_dir() -> Path | None:
    """Debian's PostgreSQL server binaries (the `postgresql` package), if installed."""
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (candidate / "initdb").exists():
            return candidate
    return None


@dataclass(frozen=True)
class Postgres:
    port: int

    def catalog(self) -> str:
        return f"postgres:dbname=postgres host=127.0.0.1 port={self.port} user=postgres"


@contextmanager
def postgres_server() -> Iterator[Postgres]:
    """A throwaway cluster (trust auth, loopback only); as root it runs as user `postgres`.

    It lives in its own temporary directory: pytest's are private to root.
    """
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        raise FileNotFoundError("PostgreSQL server binaries (Debian package postgresql)")
    root = Path(tempfile.mkdtemp(prefix="frugal-pg-"))
    data, sockets = root / "pgdata", root / "sockets"
    sockets.mkdir(exist_ok=True)
    as_user: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        as_user = ["runuser", "-u", "postgres", "--"]
        shutil.chown(root, "postgres")
        shutil.chown(sockets, "postgres")
    subprocess.run(
        [*as_user, str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust"],
        check=True,
        capture_output=True,
    )
    port = free_port()
    with (root / "postgres.log").open("wb") as out:
        process = subprocess.Popen(
            [*as_user, str(bin_dir / "postgres"), "-D", str(data), "-p", str(port),
             "-h", "127.0.0.1", "-k", str(sockets)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        wait_for_port(port, process, "postgres")
        yield Postgres(port)
    finally:
        process.terminate()
        process.wait(timeout=20)
        shutil.rmtree(root, ignore_errors=True)
