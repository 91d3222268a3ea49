"""A file becomes one `ingest` document: id = content hash, images and big texts by reference.

The id is the SHA-256 of the file's bytes (first 32 hex digits): the same file published twice
is the same document, and two different files never share an id, whatever their names. The
path is kept in `source` and `title`. A file that cannot be converted still becomes a record,
carrying `unreadable`: the ingest worker dead-letters it as `invalid_job` with its path.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.convert import ConversionFailed, ImageData, convert_file
from schemas.config import Config
from schemas.media import ImageRef
from sinks.blobs import BlobStore, sha256_hex

DOC_ID_HEX = 32  # 128 bits of SHA-256: collisions are out of reach
RECORD_HEADROOM = 4096  # Kafka's own framing and headers, kept free under max_message_bytes


@dataclass(frozen=True)
class FileDocument:
    """A converted file, ready to publish: its record and what publish reports about it."""

    doc_id: str
    content_hash: str
    value: bytes
    problem: str | None = None  # the one-line reason when the file could not be converted


def document_id(data: bytes) -> str:
    return sha256_hex(data)[:DOC_ID_HEX]


def _image_ref(image: ImageData, blobs: BlobStore, source: str) -> ImageRef:
    return ImageRef(
        sha256=blobs.put(image.data),
        media_type=image.media_type,
        bytes=len(image.data),
        width=image.width,
        height=image.height,
        source=source,
        page=image.page,
    )


def file_document(
    path: Path, config: Config, blobs: BlobStore, tasks: list[dict[str, Any]] | None = None
) -> FileDocument:
    """Read, hash and convert one file; never raises for a bad file (see `problem`)."""
    problem: str | None = None
    try:
        data = path.read_bytes()
    except OSError as exc:
        data, problem = str(path).encode(), f"cannot read ({exc.strerror})"
    digest = sha256_hex(data)
    doc: dict[str, Any] = {
        "id": digest[:DOC_ID_HEX],
        "title": path.name,
        "source": str(path),
        "metadata": {"path": str(path), "content_sha256": digest, "bytes": len(data)},
    }
    if tasks:
        doc["tasks"] = tasks
    if problem is None:
        try:
            converted = convert_file(path, data)
        except ConversionFailed as exc:
            problem = str(exc)
        else:
            doc["text"] = converted.text
            doc["paged"] = converted.paged
            doc["metadata"]["converter"] = converted.converter
            doc["images"] = [
                _image_ref(i, blobs, str(path)).model_dump(exclude_none=True)
                for i in converted.images
            ]
    if problem is not None:
        doc["text"] = ""
        doc["unreadable"] = f"{path}: {problem}"
    value = json.dumps(doc).encode()
    if len(value) > config.kafka.max_message_bytes - RECORD_HEADROOM:
        doc["text_ref"] = blobs.put(doc["text"].encode())
        doc["text"] = ""
        value = json.dumps(doc).encode()
    return FileDocument(doc["id"], digest, value, problem)
