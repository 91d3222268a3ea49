"""`frugal demo` (what `make demo` runs): exits 0 and prints the cost report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from support.frugal_testkit import lake_query

from bench.samples import SAMPLE_INVOICES


def test_demo_processes_the_bundled_samples_and_prints_the_saving(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env["COLUMNS"] = "100"
    done = subprocess.run(
        [sys.executable, "-m", "cli", "demo"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "published 224 records" in done.stdout  # 222 JSON records, a PDF and an image
    assert "saved" in done.stdout and "Spend by model" in done.stdout
    data = tmp_path / "data" / "demo"
    answered = lake_query(data, "SELECT count(DISTINCT job_id) FROM results_all")[0][0]
    # tickets, invoices, 2 tasks per doc, 2 files, then the tickets again with a deadline
    assert answered == 150 + 60 + 12 * 2 + 2 + 150
    assert "Deadline run" in done.stdout and "of the synchronous bill" in done.stdout
    # The PDF and the photo: their invoice fields, the photo read by a vision model
    extracted = lake_query(
        data,
        "SELECT output, model FROM results_all WHERE job_id LIKE '%#fields' ORDER BY output",
    )
    by_number = {f["invoice_number"]: f for f in map(json.loads, (o for o, _ in extracted))}
    assert by_number == {f["invoice_number"]: f for f in SAMPLE_INVOICES.values()}
    assert (data / "frugal.toml").exists()
