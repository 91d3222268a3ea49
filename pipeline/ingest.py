"""Turning an `ingest` document into one job per task (and per chunk when text is long)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from pipeline.convert import PAGE_BREAK
from providers.tokens import estimate_tokens
from schemas.config import Config
from schemas.errors import JobError
from schemas.jobs import Document, TaskJob, parse_job
from schemas.media import ImageRef
from sinks.blobs import BlobStore

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


@dataclass(frozen=True)
class Chunk:
    """One job's share of a document: text, or one image, and the pages it covers."""

    text: str
    first_page: int | None = None
    last_page: int | None = None
    images: list[ImageRef] = field(default_factory=list)

    def metadata(self) -> dict[str, Any]:
        if self.first_page is None:
            return {}
        pages = {"page": self.first_page}
        return (
            pages if self.last_page == self.first_page else {**pages, "last_page": self.last_page}
        )


def split_pages(pages: list[str], max_tokens: int) -> list[Chunk]:
    """Chunks of a paged text: whole pages gathered up to ~max_tokens, long pages split; each
    chunk knows its first and last page (1-based). Blank pages (scans) make no text chunk."""
    chunks: list[Chunk] = []
    held: list[tuple[int, str]] = []  # (page number, text) gathered for the next chunk
    size = 0

    def close() -> None:
        if held:
            chunks.append(Chunk("\n\n".join(t for _, t in held), held[0][0], held[-1][0]))
            held.clear()

    for number, page in enumerate(pages, 1):
        if not page.strip():
            continue
        tokens = estimate_tokens(page)
        if held and size + tokens > max_tokens:
            close()
            size = 0
        if tokens > max_tokens:
            chunks += [Chunk(piece, number, number) for piece in split_text(page, max_tokens)]
            continue
        held.append((number, page))
        size += tokens
    close()
    return chunks


def document_chunks(doc: Document, config: Config, max_tokens: int) -> list[Chunk]:
    """The text chunks (by tokens, pages kept for PDFs), then one chunk per image."""
    text = doc.text
    if doc.text_ref:
        text = BlobStore(config.storage).get(doc.text_ref).decode("utf-8")
    if doc.paged:
        chunks = split_pages(text.split(PAGE_BREAK), max_tokens)
    else:
        chunks = [Chunk(t) for t in split_text(text, max_tokens)] if text or not doc.images else []
    for image in doc.images:
        caption = f"Image: {image.source or doc.title or doc.id}"
        caption += f", page {image.page}" if image.page else ""
        chunks.append(Chunk(caption, image.page, image.page, [image]))
    return chunks


def _task_name(template: dict[str, Any], index: int) -> str:
    return str(
        template.get("name") or template.get("id") or f"{template.get('kind', 'task')}{index}"
    )


def document_jobs(doc: Document, config: Config) -> list[TaskJob]:
    """Every job the document fans out into; JobError if a task template is invalid or the
    document could not be converted when it was published."""
    if doc.unreadable:
        raise JobError(doc.unreadable)
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
        chunks = document_chunks(doc, config, chunk_tokens)
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
                **chunk.metadata(),
            }
            data = {
                **template,
                "id": f"{doc.id}#{name}" + (f"#{n}" if len(chunks) > 1 else ""),
                "tenant": template.get("tenant", doc.tenant),
                "input": chunk.text,
                "metadata": metadata,
                "images": [i.model_dump(exclude_none=True) for i in chunk.images],
            }
            try:
                jobs.append(parse_job(data))
            except JobError as exc:
                raise JobError(f"task {index} ({name}): {exc}") from None
    return jobs
