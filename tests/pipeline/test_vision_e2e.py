"""Done-when (b): fields extracted from an invoice photo through the simulator match the gold
fields, on each of the three wire protocols, and `usage` equals the simulator's own bill."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from support.doc_fixtures import invoice_image, write
from support.frugal_testkit import SIM_KEY, lake_query, run_frugal, sim_providers, write_config

from bench.samples import INVOICE_SCHEMA
from bus.broker import EmbeddedBroker
from providers.sim import SimThread
from schemas.config import SimConfig

GOLD = {
    "invoice_number": "INV-2026-0042",
    "vendor": "Kestrel Software Ltd",
    "total": 1234.5,
    "currency": "EUR",
    "due_date": "2026-03-31",
}
# One vision model per protocol, and a cheaper text-only one that must never get the image.
MODELS = [
    {
        "name": "text-only",
        "provider": "openai",
        "model": "gpt-4.1-nano",
        "tier": 1,
        "capabilities": ["json_schema"],
        "input_per_mtok": 0.01,
        "output_per_mtok": 0.01,
    },
    {
        "name": "gpt-4o-mini",
        "provider": "openai",
        "model": "gpt-4o-mini",
        "tier": 1,
        "capabilities": ["json_schema", "vision"],
    },
    {
        "name": "claude-3-5-haiku",
        "provider": "anthropic",
        "model": "claude-3-5-haiku-latest",
        "tier": 1,
        "capabilities": ["tools", "vision"],
    },
    {
        "name": "gemini-2.5-flash",
        "provider": "gemini",
        "model": "gemini-2.5-flash",
        "tier": 1,
        "capabilities": ["json_schema", "vision"],
    },
]


@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini"])
def test_invoice_photo_fields_match_gold_and_usage_matches_the_bill(
    broker: EmbeddedBroker, prefix: str, tmp_path: Path, provider: str
) -> None:
    with SimThread(SimConfig(api_key=SIM_KEY)) as sim:
        config = write_config(
            tmp_path / "frugal.toml",
            prefix=prefix,
            data_dir=tmp_path / "data",
            providers=sim_providers(
                {name: sim.base_url for name in ("openai", "anthropic", "gemini")}
            ),
            models=[m for m in MODELS if m["provider"] == provider or m["name"] == "text-only"],
        )
        fmt = "JPEG" if provider == "anthropic" else "PNG"
        photo = write(tmp_path / "in" / f"invoice.{fmt.lower()}", invoice_image(GOLD, fmt))
        tasks = tmp_path / "tasks.json"
        tasks.write_text(
            json.dumps([{"name": "fields", "kind": "extract", "schema": INVOICE_SCHEMA}])
        )
        published = run_frugal(
            ["publish", "--config", str(config), "--tasks", str(tasks), str(photo)],
            bootstrap=broker.bootstrap,
        )
        assert published.returncode == 0, published.stderr
        assert "1 new, 0 already known" in published.stdout
        drained = run_frugal(
            ["worker", "--config", str(config), "--drain"], bootstrap=broker.bootstrap, timeout=120
        )
        assert drained.returncode == 0, drained.stderr[-2000:]
        bill = sim.server.stats()
    data = tmp_path / "data"
    [(output, model, doc_id)] = lake_query(data, "SELECT output, model, doc_id FROM results_all")
    assert json.loads(output) == GOLD
    assert model != "text-only"
    assert doc_id and len(doc_id) == 32
    [(calls, input_tokens, output_tokens)] = lake_query(
        data, "SELECT count(*), sum(input_tokens), sum(output_tokens) FROM usage_all"
    )
    billed = bill["usage"]
    assert calls == bill["requests"]
    assert input_tokens == billed["input_tokens"] > 200  # the image is billed, not only text
    assert output_tokens == billed["output_tokens"]
    assert "base64" not in drained.stderr and "iVBOR" not in drained.stderr  # no image bytes


def test_an_image_no_model_can_see_is_dead_lettered_by_reference_not_bytes(
    broker: EmbeddedBroker, prefix: str, tmp_path: Path
) -> None:
    with SimThread(SimConfig(api_key=SIM_KEY)) as sim:
        config = write_config(
            tmp_path / "frugal.toml",
            prefix=prefix,
            data_dir=tmp_path / "data",
            providers=sim_providers({"openai": sim.base_url}),
            models=[MODELS[0]],  # text only
        )
        photo = write(tmp_path / "in" / "invoice.png", invoice_image(GOLD))
        assert (
            run_frugal(
                ["publish", "--config", str(config), str(photo)], bootstrap=broker.bootstrap
            ).returncode
            == 0
        )
        drained = run_frugal(
            ["worker", "--config", str(config), "--drain"], bootstrap=broker.bootstrap, timeout=120
        )
        assert drained.returncode == 0, drained.stderr[-2000:]
        assert sim.server.stats()["requests"] == 0
    [(error_type, error, job)] = lake_query(
        tmp_path / "data", "SELECT error_type, error, job FROM dead_letters_all"
    )
    digest = hashlib.sha256(photo.read_bytes()).hexdigest()
    assert digest in job and str(photo) in job  # a reference: path and hash
    assert "iVBOR" not in job and len(job) < 5000  # never the picture
    assert "vision" in error, (error_type, error)
