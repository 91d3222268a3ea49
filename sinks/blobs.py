"""Content-addressed files beside the lake: images and oversized texts, named by SHA-256.

Kafka records carry the hash, never the bytes: records stay small, dead letters keep a
reference, and the same image published twice is stored once.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from schemas.config import StorageConfig
from schemas.errors import JobError


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class BlobStore:
    def __init__(self, storage: StorageConfig) -> None:
        self.root = Path(storage.data_dir) / "blobs"

    def path(self, digest: str) -> Path:
        return self.root / digest[:2] / digest

    def put(self, data: bytes) -> str:
        """Store the bytes (once); their SHA-256, which names them."""
        digest = sha256_hex(data)
        target = self.path(digest)
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(f"{digest}.{os.getpid()}.part")
            partial.write_bytes(data)
            os.replace(partial, target)  # readers never see half a blob
        return digest

    def get(self, digest: str) -> bytes:
        """The bytes named by `digest`; JobError if missing or not what the name says."""
        try:
            data = self.path(digest).read_bytes()
        except OSError:
            raise JobError(f"blob {digest[:12]} is missing from {self.root}") from None
        if sha256_hex(data) != digest:
            raise JobError(f"blob {digest[:12]} in {self.root} is corrupt (hash mismatch)")
        return data
