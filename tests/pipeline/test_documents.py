"""File documents: content-hash ids, page numbers on chunks, images by reference, records
under the broker's size limit, and unreadable files as invalid jobs with their path."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from support.doc_fixtures import corrupt_pdf, invoice_image, scanned_pdf, text_pdf, write

from pipeline.app import resolve_all_prices
from pipeline.documents import file_document
from pipeline.ingest import document_jobs
from pipeline.routing import Router, RoutingInput
from pipeline.vision import image_token_estimate, load_images
from schemas.config import Config
from schemas.errors import JobError
from schemas.jobs import parse_document, parse_job
from sinks.blobs import BlobStore

FIELDS = {
    "invoice_number": "INV-9",
    "vendor": "Acme Supplies GmbH",
    "total": 5.0,
    "currency": "USD",
    "due_date": "2026-09-09",
}


@pytest.fixture
def cfg(tmp_path: Path) -> Config:
    return Config.model_validate(
        {
            "storage": {"data_dir": str(tmp_path / "data")},
            "routes": {"generate": {"chunk_tokens": 120}},
            "kafka": {"max_message_bytes": 20_000},
        }
    )


def doc_of(path: Path, cfg: Config) -> dict[str, Any]:
    return json.loads(file_document(path, cfg, BlobStore(cfg.storage)).value)


def test_ids_are_content_hashes_whatever_the_names(tmp_path: Path, cfg: Config) -> None:
    a = write(tmp_path / "a" / "README.md", b"alpha")
    b = write(tmp_path / "b" / "README.md", b"beta")
    c = write(tmp_path / "c" / "other.md", b"alpha")
    da, db, dc = (doc_of(p, cfg) for p in (a, b, c))
    assert da["id"] != db["id"]  # same name, different content
    assert da["id"] == dc["id"]  # same content, different name: the same document
    assert len(da["id"]) == 32 and da["source"] == str(a) and da["title"] == "README.md"


def test_pdf_chunks_cite_their_pages(tmp_path: Path, cfg: Config) -> None:
    pages = [" ".join(f"page{n} word{i}" for i in range(20)) for n in (1, 2, 3)]
    path = write(tmp_path / "r.pdf", text_pdf(pages))
    jobs = document_jobs(parse_document(doc_of(path, cfg)), cfg)
    assert [j.metadata["page"] for j in jobs] == [1, 2, 3]
    assert all(f"page{j.metadata['page']} word0" in j.input for j in jobs)


def test_a_scanned_page_becomes_an_image_job_by_reference(tmp_path: Path, cfg: Config) -> None:
    path = write(tmp_path / "scan.pdf", scanned_pdf(["pixels only"]))
    record = file_document(path, cfg, BlobStore(cfg.storage)).value
    [job] = document_jobs(parse_document(record), cfg)
    [ref] = job.images
    assert ref.page == 1 and job.metadata["page"] == 1 and ref.source == str(path)
    assert b"iVBOR" not in record and len(record) < 2000  # a hash, not the picture
    [image] = load_images(job, cfg.storage)
    assert image.media_type == "image/png" and image.data_b64.startswith("iVBOR")
    assert image_token_estimate(job) > 1000  # reserved before the call


def test_an_image_job_goes_only_to_vision_models(tmp_path: Path, cfg: Config) -> None:
    path = write(tmp_path / "photo.png", invoice_image(FIELDS))
    [job] = document_jobs(parse_document(doc_of(path, cfg)), cfg)
    models = [
        {
            "name": "blind",
            "provider": "p",
            "model": "b",
            "capabilities": ["json_schema"],
            "free": True,
        },
        {
            "name": "eyes",
            "provider": "p",
            "model": "e",
            "capabilities": ["json_schema", "vision"],
            "free": True,
        },
    ]
    config = Config.model_validate(
        {"providers": [{"name": "p", "base_url": "http://p.invalid/v1"}], "models": models}
    )
    plan = Router(config, resolve_all_prices(config)).plan(RoutingInput(job, 500, 64))
    assert [c.model.name for c in plan.candidates] == ["eyes"]
    assert plan.rejected == {"blind": "no vision"}
    text_job = parse_job({"id": "t", "kind": "generate", "input": "x"})
    assert (
        len(Router(config, resolve_all_prices(config)).candidates(RoutingInput(text_job, 5, 5)))
        == 2
    )


def test_an_unreadable_file_is_an_invalid_job_naming_its_path(tmp_path: Path, cfg: Config) -> None:
    path = write(tmp_path / "deep" / "broken.pdf", corrupt_pdf())
    made = file_document(path, cfg, BlobStore(cfg.storage))
    assert made.problem and "unreadable PDF" in made.problem
    with pytest.raises(JobError) as caught:
        document_jobs(parse_document(made.value), cfg)
    assert str(path) in str(caught.value) and "unreadable PDF" in str(caught.value)


def test_a_document_over_the_message_limit_is_stored_beside_the_lake(
    tmp_path: Path, cfg: Config
) -> None:
    text = "\n\n".join(f"Paragraph {i} " + "word " * 50 for i in range(200))  # ~55 kB
    path = write(tmp_path / "big.md", text.encode())
    made = file_document(path, cfg, BlobStore(cfg.storage))
    assert len(made.value) < cfg.kafka.max_message_bytes
    doc = parse_document(made.value)
    assert doc.text == "" and doc.text_ref
    jobs = document_jobs(doc, cfg)
    assert len(jobs) > 1
    assert " ".join(j.input for j in jobs).split() == text.split()  # nothing lost


def test_a_missing_blob_is_a_one_line_job_error(tmp_path: Path, cfg: Config) -> None:
    doc = parse_document({"id": "d", "text": "", "text_ref": "0" * 64})
    with pytest.raises(JobError, match="missing"):
        document_jobs(doc, cfg)


def test_small_pages_gather_into_one_chunk_that_names_its_page_range() -> None:
    from pipeline.ingest import split_pages

    [chunk] = split_pages(["one", "", "three"], 100)  # page 2 is a blank scan
    assert chunk.metadata() == {"page": 1, "last_page": 3}
    assert chunk.text == "one\n\nthree"
