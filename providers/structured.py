"""How a model is asked for JSON that fits a schema: decided here, once, for everyone.

The adapter builds its request body from it; routing sets a model's prior validity from it
(a schema enforced natively is followed far more often than one described in the prompt).
Anthropic's protocol always forces one tool and Gemini's always sends the response schema;
over OpenAI's protocol it depends on what the model's `capabilities` say it supports.
"""

from __future__ import annotations

from typing import Literal

from schemas.config import ModelConfig, ProviderKind

StructuredMode = Literal["json_schema", "tool", "json_object", "prompt"]

# Protocols whose adapters always enforce the schema natively, whatever the capabilities say.
PROTOCOL_MODE: dict[ProviderKind, StructuredMode] = {"anthropic": "tool", "gemini": "json_schema"}
# OpenAI's protocol: the first capability the model has, in order of preference.
CAPABILITY_MODE: tuple[tuple[str, StructuredMode], ...] = (
    ("json_schema", "json_schema"),
    ("tools", "tool"),
    ("json_object", "json_object"),
)


def structured_mode(model: ModelConfig, protocol: ProviderKind = "openai") -> StructuredMode:
    """The one answer to "how does this model get the output schema": native, or in words."""
    if protocol in PROTOCOL_MODE:
        return PROTOCOL_MODE[protocol]
    caps = set(model.capabilities)
    return next((mode for cap, mode in CAPABILITY_MODE if cap in caps), "prompt")


def schema_is_enforced(mode: StructuredMode) -> bool:
    """False where nothing but the prompt's words asks for the schema (json_object, prompt)."""
    return mode not in ("json_object", "prompt")
