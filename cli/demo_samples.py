"""The fixed parts of the demo's bundled samples (`cli/samples/`): the invoice schema and the
task asked of the bundled files. The generator that wrote the bundle is `bench/samples.py`."""

from __future__ import annotations

from typing import Any

CURRENCIES = ["EUR", "USD", "GBP"]

INVOICE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "invoice_number": {"type": "string"},
        "vendor": {"type": "string"},
        "total": {"type": "number"},
        "currency": {"type": "string", "enum": CURRENCIES},
        "due_date": {"type": "string"},
    },
    "required": ["invoice_number", "vendor", "total", "currency", "due_date"],
    "additionalProperties": False,
}

# Reading fields off a photo or a scan wants a balanced model at least (tier 2).
FILE_TASKS: list[dict[str, Any]] = [
    {"name": "fields", "kind": "extract", "schema": INVOICE_SCHEMA, "min_tier": 2}
]
