"""Ingest: a document becomes one job per task, and per chunk when its text is long."""

from __future__ import annotations

import pytest

from pipeline.ingest import document_jobs, split_text
from providers.tokens import estimate_tokens
from schemas.config import Config, RouteConfig
from schemas.errors import JobError
from schemas.jobs import ClassifyJob, Document, GenerateJob


def long_text(paragraphs: int, words: int = 120) -> str:
    return "\n\n".join(" ".join(f"word{p}x{w}" for w in range(words)) for p in range(paragraphs))


def test_short_text_is_one_chunk() -> None:
    assert split_text("a short note", 100) == ["a short note"]


def test_long_text_splits_at_paragraphs_within_the_budget() -> None:
    text = long_text(12)
    chunks = split_text(text, 800)
    assert len(chunks) > 1
    assert all(estimate_tokens(c) <= 800 for c in chunks)
    assert "\n\n".join(chunks).split() == text.split()  # nothing lost, nothing repeated


def test_a_single_huge_paragraph_is_split_by_words() -> None:
    text = " ".join(f"w{i}" for i in range(5000))
    chunks = split_text(text, 500)
    assert len(chunks) > 1
    assert " ".join(chunks).split() == text.split()


def test_each_task_and_chunk_becomes_a_job_carrying_the_doc_id() -> None:
    config = Config(routes={"classify": RouteConfig(chunk_tokens=800)})
    doc = Document(
        id="d1",
        text=long_text(12),
        title="T",
        source="s",
        tenant="acme",
        tasks=[
            {"name": "topic", "kind": "classify", "labels": ["a", "b"]},
            {"name": "sum", "kind": "generate", "prompt": "Summarize"},
        ],
    )
    jobs = document_jobs(doc, config)
    classify = [j for j in jobs if isinstance(j, ClassifyJob)]
    generate = [j for j in jobs if isinstance(j, GenerateJob)]
    assert len(classify) == len(split_text(doc.text, 800)) > 1
    assert len(generate) == len(split_text(doc.text, 2000)) < len(classify)  # default chunk size
    assert {j.doc_id for j in jobs} == {"d1"}
    assert len({j.id for j in jobs}) == len(jobs)
    assert all(j.tenant == "acme" for j in jobs)
    assert [j.metadata["chunk"] for j in classify] == list(range(len(classify)))


def test_a_document_without_tasks_uses_the_ingest_route_tasks() -> None:
    config = Config(routes={"ingest": RouteConfig(tasks=[{"kind": "classify", "labels": ["x"]}])})
    jobs = document_jobs(Document(id="d", text="hello"), config)
    assert [j.kind for j in jobs] == ["classify"]


@pytest.mark.parametrize(
    ("task", "reason"),
    [
        ({"kind": "summarize"}, "must be classify, extract or generate"),
        ({"kind": "classify", "labels": []}, "labels"),
        ({"kind": "extract", "schema": {"type": "object", "properties": 3}}, "schema"),
    ],
)
def test_an_invalid_task_template_is_an_invalid_job(task: dict, reason: str) -> None:
    with pytest.raises(JobError, match=reason):
        document_jobs(Document(id="d", text="t", tasks=[task]), Config())
