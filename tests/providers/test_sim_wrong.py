"""The simulator's valid-but-wrong answers: a per-model `wrong_rate`, fixed per input, over a
right answer read off the input alone (the same for every model)."""

from __future__ import annotations

import json
from typing import Any

import httpx
from test_sim import CLASSIFY, is_valid, openai_body

from providers.sim import SimThread
from providers.sim.answers import answer
from schemas.config import SimConfig, SimModelConfig

PROMPTS = [f"ticket {i}: I was charged twice, a billing problem" for i in range(300)]
INVOICE = {
    "type": "object",
    "properties": {"vendor": {"type": "string"}, "total": {"type": "number"}},
    "required": ["vendor", "total"],
}


def labels(sim: SimThread, model: str) -> list[Any]:
    with httpx.Client(base_url=sim.base_url, timeout=10) as http:
        out = []
        for text in PROMPTS:
            body = openai_body(text, CLASSIFY, model=model)
            raw = http.post("/v1/chat/completions", json=body).json()
            value = json.loads(raw["choices"][0]["message"]["content"])
            assert is_valid(value, CLASSIFY)  # wrong, never malformed
            out.append(value["label"])
    return out


def test_wrong_rate_is_per_model_deterministic_and_near_the_configured_share() -> None:
    config = SimConfig(models={"cheap": SimModelConfig(wrong_rate=0.3)})
    with SimThread(config) as sim:
        cheap, right = labels(sim, "cheap"), labels(sim, "exact")
        assert sim.stats()["models"]["cheap"]["wrong_answers"] == sum(
            label != "billing" for label in cheap
        )
        assert sim.stats()["models"]["exact"]["wrong_answers"] == 0
    with SimThread(config) as again:
        assert labels(again, "cheap") == cheap  # the same job gets the same wrong answer
    assert right == ["billing"] * len(PROMPTS)
    assert 0.22 <= sum(label != "billing" for label in cheap) / len(cheap) <= 0.38


def test_a_wrong_extraction_still_validates_but_differs_in_a_field() -> None:
    text = "vendor: Acme Supplies\ntotal: 12.50"
    right = answer(INVOICE, text, "a", 0.0, False)
    wrong = answer(INVOICE, text, "a", 0.0, False, wrong_rate=1.0)
    assert right.value == {"vendor": "Acme Supplies", "total": 12.5}
    assert wrong.wrong and wrong.valid and is_valid(wrong.value, INVOICE)
    assert wrong.value != right.value
