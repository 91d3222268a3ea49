"""`frugal publish` knows what it published before (a compacted topic of ids): new records
are counted, known ones skipped, and a known id with different content is a conflict."""

from __future__ import annotations

import json
from pathlib import Path

from support.doc_fixtures import write
from support.frugal_testkit import jsonl, run_frugal, write_config
from support.kafka_kit import KafkaKitBroker

from bus.broker import EmbeddedBroker

JOBS = [{"id": f"j{i}", "kind": "generate", "input": f"text {i}"} for i in range(3)]


def test_republishing_is_idempotent_and_a_changed_job_is_a_conflict(
    each_broker: EmbeddedBroker | KafkaKitBroker, prefix: str, tmp_path: Path
) -> None:
    config = write_config(
        tmp_path / "f.toml", prefix=prefix, data_dir=tmp_path / "d", providers=[], models=[]
    )
    args = ["publish", "--config", str(config), "-"]
    first = run_frugal(args, bootstrap=each_broker.bootstrap, stdin=jsonl(JOBS))
    assert first.returncode == 0, first.stderr
    assert "3 new, 0 already known" in first.stdout

    changed = [*JOBS[:2], {**JOBS[2], "input": "something else"}, {"id": "j9", "kind": "generate"}]
    again = run_frugal(args, bootstrap=each_broker.bootstrap, stdin=jsonl(changed))
    assert again.returncode == 1  # the user must act on a conflict
    assert (
        "published 1 records (generate: 1); 1 new, 2 already known, 1 conflicting" in again.stdout
    )
    [conflict] = [line for line in again.stderr.splitlines() if line.startswith("conflict")]
    assert "'j2'" in conflict and "different content" in conflict
    forced = run_frugal([*args, "--republish"], bootstrap=each_broker.bootstrap, stdin=jsonl(JOBS))
    assert forced.returncode == 0, forced.stderr
    assert "published 3 records (generate: 3); 0 new, 3 already known (published again)" in (
        forced.stdout
    )


def test_publish_dir_walks_the_tree_with_a_glob(
    broker: EmbeddedBroker, prefix: str, tmp_path: Path
) -> None:
    for folder in ("a", "b", "c"):
        write(tmp_path / "docs" / folder / "README.md", f"# {folder}".encode())
        write(tmp_path / "docs" / folder / "notes.txt", f"notes {folder}".encode())
    write(tmp_path / "docs" / ".hidden.md", b"never")
    config = write_config(
        tmp_path / "f.toml", prefix=prefix, data_dir=tmp_path / "d", providers=[], models=[]
    )
    done = run_frugal(
        ["publish", "--config", str(config), "--glob", "*.md", str(tmp_path / "docs")],
        bootstrap=broker.bootstrap,
    )
    assert done.returncode == 0, done.stderr
    assert "published 3 records (ingest: 3); 3 new, 0 already known" in done.stdout
    tasks = tmp_path / "tasks.json"
    tasks.write_text(json.dumps({"kind": "unknown"}))
    bad = run_frugal(
        ["publish", "--config", str(config), "--tasks", str(tmp_path / "nope.json"), str(tasks)],
        bootstrap=broker.bootstrap,
    )
    assert bad.returncode == 1 and "--tasks" in bad.stderr and "Traceback" not in bad.stderr
