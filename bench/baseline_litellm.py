"""Baseline: a LiteLLM Router script doing the same calls, with validation, cost and Parquet.

Runs in its own venv (`.venv-litellm`, made by `make bench`): LiteLLM pins its own versions
of httpx, openai and pydantic, which must not leak into the project's environment.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no network fetch at import
os.environ.setdefault("LITELLM_TELEMETRY", "False")

import litellm
from litellm import Router

from bench.baseline_common import (
    Tally,
    chat_messages,
    finish,
    load_calls,
    parse_args,
    record,
    response_format,
    run_all,
)

MODEL = "gpt-4.1-nano"


async def main() -> None:
    args = parse_args(__doc__ or "")
    litellm.suppress_debug_info = True
    calls = load_calls(args.calls)
    router = Router(
        model_list=[
            {
                "model_name": MODEL,
                "litellm_params": {
                    "model": f"openai/{MODEL}",
                    "api_base": args.base_url,
                    "api_key": args.api_key,
                },
            }
        ],
        num_retries=0,
    )
    tally = Tally()

    async def one(call: dict[str, Any]) -> None:
        try:
            response = await router.acompletion(
                model=MODEL,
                messages=chat_messages(call),
                max_tokens=call["max_tokens"],
                temperature=0.0,
                response_format=response_format(call),
            )
        except Exception:  # LiteLLM wraps every provider error in its own classes
            tally.failed += 1
            return
        cost = response._hidden_params.get("response_cost")
        if cost is None:
            cost = litellm.completion_cost(completion_response=response)
        usage = response.usage
        text = response.choices[0].message.content or ""
        record(tally, call, MODEL, (text, usage.prompt_tokens, usage.completion_tokens), cost)

    await run_all(calls, args.concurrency, one)
    finish(tally, args.out)


if __name__ == "__main__":
    asyncio.run(main())
