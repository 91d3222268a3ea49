"""Done-when (a): a tree of 40 files, 10 names repeated across 4 folders, in 8 formats (text
and scanned PDF, a corrupt PDF, DOCX, HTML, EML, Markdown, PNG, JPEG), published twice."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from support.doc_fixtures import (
    corrupt_pdf,
    docx,
    eml,
    html,
    invoice_image,
    scanned_pdf,
    text_pdf,
    write,
)
from support.frugal_testkit import (
    SIM_KEY,
    default_models,
    lake_query,
    run_frugal,
    sim_providers,
    write_config,
)

from bus.broker import EmbeddedBroker
from providers.sim import SimThread
from schemas.config import SimConfig

FOLDERS = ["north", "south", "east", "west"]
CHUNK_TOKENS = 120
TASKS = [
    {"name": "topic", "kind": "classify", "labels": ["invoice", "report", "other"]},
    {"name": "summary", "kind": "generate", "prompt": "Summarize in one sentence."},
]


def report_pages(folder: str) -> list[str]:
    """Three pages of about 100 tokens each: each page is its own chunk at CHUNK_TOKENS."""
    return [
        " ".join(f"{folder} quarterly report page {n} line {i} about revenue." for i in range(8))
        for n in (1, 2, 3)
    ]


def files_of(folder: str) -> dict[str, bytes]:
    fields = {
        "invoice_number": f"INV-{folder}",
        "vendor": "Northwind Traders",
        "total": 99.5,
        "currency": "EUR",
        "due_date": "2026-05-01",
    }
    return {
        "report.pdf": text_pdf(report_pages(folder)),
        "scan.pdf": scanned_pdf([f"Scanned receipt from {folder}", "Total: 12.00 EUR"]),
        "broken.pdf": corrupt_pdf() + folder.encode(),
        "letter.docx": docx(f"Letter {folder}", [f"Dear {folder} team, the order shipped."]),
        "index.html": html(f"News {folder}", [f"The {folder} office opened a new wing today."] * 3),
        "mail.eml": eml(f"Invoice question {folder}", f"Please resend the {folder} invoice."),
        "README.md": f"# {folder}\n\nThis folder holds the {folder} region's documents.\n".encode(),
        "notes.txt": f"Call notes for {folder}: customer asked about billing.\n".encode(),
        "photo.png": invoice_image(fields),
        "receipt.jpg": invoice_image({**fields, "total": 12.0}, "JPEG"),
    }


@pytest.fixture
def tree(tmp_path: Path) -> dict[Path, bytes]:
    made: dict[Path, bytes] = {}
    for folder in FOLDERS:
        for name, data in files_of(folder).items():
            made[write(tmp_path / "tree" / folder / name, data)] = data
    return made


def doc_id(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:32]


def publish(config: Path, root: Path, tasks: Path, bootstrap: str, *more: str) -> str:
    done = run_frugal(
        ["publish", "--config", str(config), "--tasks", str(tasks), *more, str(root)],
        bootstrap=bootstrap,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout + done.stderr


def drain(config: Path, bootstrap: str) -> None:
    done = run_frugal(
        ["worker", "--config", str(config), "--drain"], bootstrap=bootstrap, timeout=180
    )
    assert done.returncode == 0, done.stderr[-3000:]


def test_a_mixed_tree_gives_one_result_per_document_task_and_chunk(
    broker: EmbeddedBroker, prefix: str, tmp_path: Path, tree: dict[Path, bytes]
) -> None:
    assert len(tree) == 40 and len({p.name for p in tree}) == 10
    assert len({doc_id(d) for d in tree.values()}) == 40  # distinct contents, repeated names
    models: list[dict[str, Any]] = [
        {**m, "capabilities": [*m["capabilities"], "vision"]} for m in default_models()
    ]
    tasks = tmp_path / "tasks.json"
    tasks.write_text(json.dumps(TASKS))
    with SimThread(SimConfig(api_key=SIM_KEY)) as sim:
        base = sim.base_url
        config = write_config(
            tmp_path / "frugal.toml",
            prefix=prefix,
            data_dir=tmp_path / "data",
            providers=sim_providers({"openai": base, "anthropic": base, "gemini": base}),
            models=models,
            routes={
                "classify": {"min_tier": 1, "chunk_tokens": CHUNK_TOKENS},
                "generate": {"min_tier": 1, "chunk_tokens": CHUNK_TOKENS},
            },
        )
        first = publish(config, tmp_path / "tree", tasks, broker.bootstrap)
        assert "40 new, 0 already known" in first
        assert first.count("cannot convert ") == 4  # one line per corrupt PDF, with its path
        assert "4 unreadable files sent to dead letters" in first
        drain(config, broker.bootstrap)
        calls_after_first = sim.server.stats()["requests"]

        second = publish(config, tmp_path / "tree", tasks, broker.bootstrap)
        assert "published 0 records; 0 new, 40 already known" in second
        drain(config, broker.bootstrap)
        assert sim.server.stats()["requests"] == calls_after_first  # nothing paid twice
        # Forced through to the workers, the same ids are still answered once only.
        third = publish(config, tmp_path / "tree", tasks, broker.bootstrap, "--republish")
        assert "published 40 records (ingest: 40); 0 new, 40 already known" in third
        drain(config, broker.bootstrap)
        assert sim.server.stats()["requests"] == calls_after_first

    data = tmp_path / "data"
    readable = {doc_id(d): p for p, d in tree.items() if p.name != "broken.pdf"}
    rows = lake_query(data, "SELECT job_id, doc_id FROM results_all")
    assert len(rows) == len({job for job, _ in rows})  # one result per job, none repeated
    assert {doc for _, doc in rows} == set(readable)  # nothing lost
    per_doc: dict[str, set[str]] = {}
    for job, doc in rows:
        per_doc.setdefault(doc, set()).add(job.split("#", 1)[1])
    for doc, path in readable.items():
        if path.name == "report.pdf":  # three pages -> three chunks per task
            expected = {f"{t['name']}#{n}" for t in TASKS for n in range(3)}
        else:
            expected = {t["name"] for t in TASKS}
        assert per_doc[doc] == expected, path

    reports = [d for d, p in readable.items() if p.name == "report.pdf"]
    cited = lake_query(
        data, f"SELECT job_id, page FROM results_all WHERE doc_id IN {tuple(reports)}"
    )
    assert len(cited) == 4 * 2 * 3
    assert all(page == int(job.rsplit("#", 1)[1]) + 1 for job, page in cited)  # chunk n: page n+1
    [(calls,)] = lake_query(data, "SELECT count(*) FROM usage_all")
    assert calls == calls_after_first
    letters = lake_query(data, "SELECT DISTINCT job_id, error_type, error FROM dead_letters_all")
    assert len(letters) == 4
    broken = {doc_id(d): p for p, d in tree.items() if p.name == "broken.pdf"}
    for job, error_type, error in letters:
        assert error_type == "invalid_job"
        assert str(broken[job]) in error and "unreadable PDF" in error
