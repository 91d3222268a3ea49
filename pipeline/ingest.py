"""Turning an `ingest` document into one job per task (and per chunk when text is long)."""

from __future__ import annotations

import re
from typing import Any

from providers.tokens import estimate_tokens
from schemas.config import Config
from schemas.errors import JobError
from schemas.jobs import Document, TaskJob, parse_job

_PARAGRAPHS = re.compile(r"\n\s*\n")
DEFAULT_TASKS: list[dict[str, Any]] = [{"kind": "generate", "prompt": "Summarize the document."}]


def _split_long_paragraph(paragraph: str, max_tokens: int) -> list[str]:
    words = paragraph.split()
    per_chunk = max(1, int(len(words) * max_tokens / max(1, estimate_tokens(paragraph))))
    return [" ".join(words[i : i + per_chunk]) for i in range(0, len(words), per_chunk)]


def split_text(text: str, max_tokens: int) -> list[str]:
    """Chunks of at most ~max_tokens, cut at paragraph boundaries where possible."""
    if estimate_tokens(text) <= max_tokens:
        return [text]
    chunks: list[str] = []
    current: list[str] = []
    size = 0
    for paragraph in _PARAGRAPHS.split(text):
        tokens = estimate_tokens(paragraph)
        pieces = (
            _split_long_paragraph(paragraph, max_tokens) if tokens > max_tokens else [paragraph]
        )
        for piece in pieces:
            piece_tokens = estimate_tokens(piece) if len(pieces) > 1 else tokens
            if current and size + piece_tokens > max_tokens:
                chunks.append("\n\n".join(current))
                current, size = [], 0
            current.append(piece)
            size += piece_tokens
    if current:
        chunks.append("\n\n".join(current))
    return chunks


def _task_name(template: dict[str, Any], index: int) -> str:
    return str(
        template.get("name") or template.get("id") or f"{template.get('kind', 'task')}{index}"
    )


def document_jobs(doc: Document, config: Config) -> list[TaskJob]:
    """Every job the document fans out into; JobError if a task template is invalid."""
    jobs: list[TaskJob] = []
    for index, template in enumerate(doc.tasks or config.route("ingest").tasks or DEFAULT_TASKS):
        kind = str(template.get("kind", ""))
        if kind not in ("classify", "extract", "generate"):
            raise JobError(f"task {index}: kind {kind!r} must be classify, extract or generate")
        chunk_tokens = (
            config.route(kind).chunk_tokens
            if kind in config.routes
            else config.route("ingest").chunk_tokens
        )
        chunks = split_text(doc.text, chunk_tokens)
        name = _task_name(template, index)
        for n, chunk in enumerate(chunks):
            metadata = {
                **doc.metadata,
                **template.get("metadata", {}),
                "doc_id": doc.id,
                "task": name,
                "chunk": n,
                "chunks": len(chunks),
                "title": doc.title,
                "source": doc.source,
            }
            data = {
                **template,
                "id": f"{doc.id}#{name}" + (f"#{n}" if len(chunks) > 1 else ""),
                "tenant": template.get("tenant", doc.tenant),
                **{k: template.get(k, getattr(doc, k)) for k in ("user", "agent", "session")},
                "input": chunk,
                "metadata": metadata,
            }
            try:
                jobs.append(parse_job(data))
            except JobError as exc:
                raise JobError(f"task {index} ({name}): {exc}") from None
    return jobs
