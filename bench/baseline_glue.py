"""Baseline: the glue script one would write first: httpx.AsyncClient, validation, cost, Parquet."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from bench.baseline_common import Tally, chat_body, finish, load_calls, parse_args, record, run_all

MODEL = "gpt-4.1-nano"
INPUT_PER_MTOK, OUTPUT_PER_MTOK = 0.10, 0.40


async def main() -> None:
    args = parse_args(__doc__ or "")
    calls = load_calls(args.calls)
    tally = Tally()
    limits = httpx.Limits(max_connections=args.concurrency)
    headers = {"Authorization": f"Bearer {args.api_key}"}
    async with httpx.AsyncClient(limits=limits, headers=headers, timeout=30) as client:

        async def one(call: dict[str, Any]) -> None:
            try:
                response = await client.post(
                    f"{args.base_url}/chat/completions", json=chat_body(call, MODEL)
                )
                response.raise_for_status()
                payload = response.json()
            except (httpx.HTTPError, ValueError):
                tally.failed += 1
                return
            usage = payload["usage"]
            cost = (
                usage["prompt_tokens"] * INPUT_PER_MTOK
                + usage["completion_tokens"] * OUTPUT_PER_MTOK
            ) / 1e6
            text = payload["choices"][0]["message"]["content"]
            record(
                tally, call, MODEL, (text, usage["prompt_tokens"], usage["completion_tokens"]), cost
            )

        await run_all(calls, args.concurrency, one)
    finish(tally, args.out)


if __name__ == "__main__":
    asyncio.run(main())
