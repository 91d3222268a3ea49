"""`frugal publish`: files become `ingest` documents; JSON Lines become jobs on their topics."""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from pipeline.producer import Producer
from pipeline.progress import Snapshot, progress_view
from pipeline.topics import ensure_topics, job_topic
from schemas.config import JOB_KINDS, Config
from schemas.errors import FrugalError

JSONL_SUFFIXES = {".jsonl", ".ndjson"}


class PublishError(FrugalError):
    type = "publish_error"


@dataclass(frozen=True)
class OutboundRecord:
    kind: str
    key: str | None
    value: bytes


@dataclass
class PublishSummary:
    by_kind: Counter[str] = field(default_factory=Counter)
    skipped: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.by_kind.values())

    def line(self) -> str:
        kinds = ", ".join(f"{k}: {n}" for k, n in sorted(self.by_kind.items()))
        return f"published {self.total} records" + (f" ({kinds})" if kinds else "")


def document_record(path: Path) -> OutboundRecord:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise PublishError(f"{path}: not UTF-8 text; only text documents can be ingested") from None
    except OSError as exc:
        raise PublishError(f"{path}: cannot read ({exc.strerror})") from None
    doc = {"id": path.stem, "text": text, "title": path.stem, "source": str(path)}
    return OutboundRecord("ingest", path.stem, json.dumps(doc).encode())


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
    return OutboundRecord(kind, str(key) if key is not None else None, line.encode())


def jsonl_records(
    stream: IO[str], name: str, kind: str | None, summary: PublishSummary
) -> Iterator[OutboundRecord]:
    for number, line in enumerate(stream, 1):
        if line.strip():
            record = line_record(line.rstrip("\n"), f"{name}:{number}", kind, summary)
            if record is not None:
                yield record


def collect(paths: list[str], kind: str | None, summary: PublishSummary) -> list[OutboundRecord]:
    records: list[OutboundRecord] = []
    for raw in paths:
        if raw == "-":
            records.extend(jsonl_records(sys.stdin, "stdin", kind, summary))
            continue
        path = Path(raw)
        if not path.exists():
            raise PublishError(f"{path}: no such file or directory")
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in files:
            if file.suffix in JSONL_SUFFIXES:
                with file.open(encoding="utf-8") as fh:
                    records.extend(jsonl_records(fh, str(file), kind, summary))
            else:
                records.append(document_record(file))
    return records


async def publish(
    config: Config,
    bootstrap: str,
    records: list[OutboundRecord],
    summary: PublishSummary,
    show_progress: bool = True,
) -> PublishSummary:
    await ensure_topics(bootstrap, config.kafka)
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
    return summary
