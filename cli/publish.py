"""`frugal publish`: files become `ingest` documents; JSON Lines become jobs on their topics."""

from __future__ import annotations

import hashlib
import json
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from bus.known_ids import KnownId, read_known, remember_published
from bus.producer import Producer
from bus.topics import ensure_topics, job_topic, published_topic
from cli.progress import Snapshot, progress_view
from pipeline.documents import file_document
from schemas.config import JOB_KINDS, Config
from schemas.errors import FrugalError
from sinks.blobs import BlobStore

JSONL_SUFFIXES = {".jsonl", ".ndjson"}


class PublishError(FrugalError):
    type = "publish_error"


@dataclass(frozen=True)
class OutboundRecord:
    kind: str
    key: str | None
    value: bytes
    content_hash: str | None = None  # None: not tracked (a record without an id)
    source: str = ""


@dataclass
class PublishSummary:
    by_kind: Counter[str] = field(default_factory=Counter)
    skipped: list[str] = field(default_factory=list)
    new: int = 0  # ids not published before (and records without an id)
    known: int = 0  # published before with the same content: skipped unless republished
    republished: bool = False
    conflicts: list[str] = field(default_factory=list)  # known ids with different content
    unreadable: list[str] = field(default_factory=list)  # files dead-lettered as invalid_job

    @property
    def total(self) -> int:
        return sum(self.by_kind.values())

    def line(self) -> str:
        kinds = ", ".join(f"{k}: {n}" for k, n in sorted(self.by_kind.items()))
        line = f"published {self.total} records" + (f" ({kinds})" if kinds else "")
        line += f"; {self.new} new, {self.known} already known"
        if self.known and self.republished:
            line += " (published again)"
        if self.conflicts:
            line += f", {len(self.conflicts)} conflicting (not published)"
        if self.unreadable:
            line += f"; {len(self.unreadable)} unreadable files sent to dead letters"
        return line


def content_hash(value: bytes) -> str:
    """What makes two records with one id the same: their JSON, keys in order."""
    try:
        canonical = json.dumps(json.loads(value), sort_keys=True, separators=(",", ":"))
    except ValueError:
        canonical = value.decode("utf-8", errors="replace")
    return hashlib.sha256(canonical.encode()).hexdigest()


def line_record(
    line: str, where: str, default_kind: str | None, summary: PublishSummary
) -> OutboundRecord | None:
    """A JSON Lines line -> record on its kind's topic; undecodable lines go to --kind raw."""
    try:
        data = json.loads(line)
    except json.JSONDecodeError:
        data = None
    if not isinstance(data, dict):
        if default_kind is None:
            summary.skipped.append(f"{where}: not a JSON object (pass --kind to publish it anyway)")
            return None
        return OutboundRecord(default_kind, None, line.encode())
    kind = str(data.get("kind") or default_kind or "")
    if kind not in JOB_KINDS:
        summary.skipped.append(f'{where}: unknown kind {kind!r}; pass --kind or set "kind"')
        return None
    key = data.get("id")
    value = line.encode()
    if key is None:
        return OutboundRecord(kind, None, value)
    return OutboundRecord(kind, str(key), value, content_hash(value), where)


def jsonl_records(
    stream: IO[str], name: str, kind: str | None, summary: PublishSummary
) -> Iterator[OutboundRecord]:
    for number, line in enumerate(stream, 1):
        if line.strip():
            record = line_record(line.rstrip("\n"), f"{name}:{number}", kind, summary)
            if record is not None:
                yield record


def document_files(path: Path, pattern: str) -> list[Path]:
    """The files a path names: itself, or those under it matching `pattern` (not hidden)."""
    if not path.is_dir():
        return [path]
    found = (p for p in path.rglob(pattern) if p.is_file())
    return sorted(p for p in found if not p.name.startswith("."))


def collect(
    paths: list[str],
    kind: str | None,
    summary: PublishSummary,
    config: Config | None = None,
    pattern: str = "*",
    tasks: list[dict[str, Any]] | None = None,
) -> list[OutboundRecord]:
    """Records for files (converted documents) and JSON Lines (jobs), in the order given."""
    config = config or Config()
    blobs = BlobStore(config.storage)
    records: list[OutboundRecord] = []
    for raw in paths:
        if raw == "-":
            records.extend(jsonl_records(sys.stdin, "stdin", kind, summary))
            continue
        path = Path(raw)
        if not path.exists():
            raise PublishError(f"{path}: no such file or directory")
        for file in document_files(path, pattern):
            if file.suffix in JSONL_SUFFIXES:
                with file.open(encoding="utf-8") as fh:
                    records.extend(jsonl_records(fh, str(file), kind, summary))
                continue
            doc = file_document(file, config, blobs, tasks)
            if doc.problem is not None:
                summary.unreadable.append(f"{file}: {doc.problem}")
            record = OutboundRecord("ingest", doc.doc_id, doc.value, doc.content_hash, str(file))
            records.append(record)
    return records


def sort_out_known(
    records: list[OutboundRecord], known: dict[str, KnownId], summary: PublishSummary
) -> list[OutboundRecord]:
    """The records to publish: new ids (and, with `summary.republished`, known ones again).
    Known ids with the same content are counted; with different content they are conflicts,
    reported and never published."""
    fresh: list[OutboundRecord] = []
    for record in records:
        seen = known.get(record.key) if record.key and record.content_hash else None
        if seen is None:
            if record.key is not None and record.content_hash is not None:
                known[record.key] = KnownId(record.content_hash, record.source)
            summary.new += 1
            fresh.append(record)
        elif seen.content_hash == record.content_hash:
            summary.known += 1
            if summary.republished:
                fresh.append(record)
        else:
            summary.conflicts.append(
                f"{record.source or record.key}: id {record.key!r} was published before with "
                f"different content ({seen.source or 'earlier'}); not published, give it a new id"
            )
    return fresh


async def publish(
    config: Config,
    bootstrap: str,
    records: list[OutboundRecord],
    summary: PublishSummary,
    show_progress: bool = True,
) -> PublishSummary:
    await ensure_topics(bootstrap, config.kafka)
    registry = published_topic(config.kafka)
    records = sort_out_known(records, await read_known(bootstrap, registry), summary)
    # A bar on a terminal, plain lines on stderr otherwise (stdout keeps the one summary line).
    view = progress_view("publishing", sys.stderr, enabled=show_progress)
    now = Snapshot(total=len(records))
    async with Producer(bootstrap) as producer:
        try:
            batch = 500
            for start in range(0, len(records), batch):
                chunk = records[start : start + batch]
                for kind in {r.kind for r in chunk}:
                    await producer.send_many(
                        job_topic(config.kafka, kind),
                        [(r.key, r.value) for r in chunk if r.kind == kind],
                    )
                for r in chunk:
                    summary.by_kind[r.kind] += 1
                now.done += len(chunk)
                view.show(now)
        finally:
            view.close(now)
        tracked = [
            (r.key, KnownId(r.content_hash, r.source))
            for r in records
            if r.key is not None and r.content_hash is not None
        ]
        await remember_published(producer, registry, tracked)
    return summary
