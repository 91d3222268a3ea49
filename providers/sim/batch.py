"""Simulated batch APIs: OpenAI Batch (Files + /batches), Anthropic Message Batches and Gemini
batch mode, with a configurable completion delay, per-request failures, expiry and a queue limit.

Requests are answered (and billed, into their own bill) when the batch completes, by the same
code that answers synchronous calls.
"""

from __future__ import annotations

import re

from aiohttp import web

from providers.sim.batch_anthropic import AnthropicBatchRoutes
from providers.sim.batch_book import SimBatch
from providers.sim.batch_gemini import GeminiBatchRoutes
from providers.sim.batch_openai import OpenAIBatchRoutes

__all__ = ["SimBatch", "SimBatches"]

_OPENAI = re.compile(
    r"(?P<acct>.*?)/v1/(?:(?P<files>files)|batches)(?:/(?P<id>[^/]+))?(?P<tail>/cancel|/content)?"
)
_ANTHROPIC = re.compile(
    r"(?P<acct>.*?)/v1/messages/batches(?:/(?P<id>[^/]+))?(?P<tail>/cancel|/results)?"
)
_GEMINI_CREATE = re.compile(
    r"(?P<acct>.*?)/v1(?:beta|alpha)?/models/(?P<model>[^/:]+):batchGenerateContent"
)
_GEMINI_BATCH = re.compile(
    r"(?P<acct>.*?)/v1(?:beta|alpha)/(?P<id>batches/[^/:]+)(?P<tail>:cancel)?"
)


class SimBatches(OpenAIBatchRoutes, AnthropicBatchRoutes, GeminiBatchRoutes):
    """The three batch APIs over one book of batches."""

    async def handle(self, request: web.Request) -> web.Response | None:
        """The answer to a batch API request, or None when the path is not one."""
        path, post = request.path, request.method == "POST"
        if m := _ANTHROPIC.fullmatch(path):
            return await self._anthropic(request, m, post)
        if post and (m := _GEMINI_CREATE.fullmatch(path)):
            return await self._gemini_create(request, m.group("model"))
        if m := _GEMINI_BATCH.fullmatch(path):
            return self._gemini_state(m.group("id"), cancel=bool(m.group("tail")))
        if m := _OPENAI.fullmatch(path):
            return await self._openai(request, m, post)
        return None
