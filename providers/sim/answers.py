"""The simulator's answers: schema-valid objects read off the user text, or invalid on cue."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from providers.sim.wrong import misread

_FIELD_LINE = re.compile(r"^[ \t>*-]*([A-Za-z][\w \-]{0,60}?)[ \t]*[:=][ \t]*(\S.*?)[ \t]*$", re.M)
_WORD = re.compile(r"[A-Za-z][A-Za-z'\-]{2,}")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_TRUE = {"true", "yes", "y", "1", "on"}
_TEMPLATES = (
    "The text is mainly about {} and {}.",
    "It explains how {} relates to {}, with attention to {}.",
    "A key point is that {} shapes the {}.",
    "The author also mentions {} alongside {}.",
    "Overall, {} and {} matter most here.",
    "Readers should note the role of {} in the {}.",
    "In short, {} connects to {} and {}.",
)
_STOPWORD_TEXT = (
    "about after again also been before being between both could does doing during each "
    "from further have having here into more most other over same should some such than "
    "that their them then there these they this those through under until very were what "
    "when where which while will with would your "
)
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())
_PLACEHOLDERS = ("topic", "details", "context", "outcome", "request")
_FORMAT_EXAMPLES = {
    "date": "2024-01-01",
    "date-time": "2024-01-01T00:00:00Z",
    "time": "00:00:00",
    "email": "user@example.com",
    "uri": "https://example.com",
    "url": "https://example.com",
    "uuid": "00000000-0000-4000-8000-000000000000",
}


@dataclass(slots=True)
class Answer:
    """What the simulated model says: `text` on the wire, `value` when it is a JSON object."""

    text: str
    value: Any = None
    valid: bool = True
    wrong: bool = False  # valid, but not the right answer (the simulator's `wrong_rate`)


def stable_fraction(*parts: str) -> float:
    """A number in [0, 1) fixed by the parts: same model and text, same draw, every run."""
    digest = hashlib.blake2b("\x00".join(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


@lru_cache(maxsize=2048)
def _enum_pattern(values: tuple[str, ...]) -> re.Pattern[str]:
    # Longest first, so "bug report" beats "bug" where both start at the same place.
    words = sorted(values, key=len, reverse=True)
    alternatives = "|".join(re.escape(w) for w in words)
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)


def pick_enum(values: list[Any], text: str, salt: str) -> Any:
    """The enum value named first in `text` (case-insensitive, whole word), else a hashed pick."""
    strings = tuple(v for v in values if isinstance(v, str) and v.strip())
    if strings:
        found = _enum_pattern(strings).search(text)
        if found:
            hit = found.group(0).lower()
            return next(v for v in strings if v.lower() == hit)
    return values[int(stable_fraction(salt, text) * len(values))] if values else None


def _key(name: str) -> str:
    return re.sub(r"[\s\-]+", "_", name.strip().lower())


class _Context:
    """The user text, its `name: value` lines (parsed on first use) and the schema root."""

    __slots__ = ("_fields", "root", "salt", "text")

    def __init__(self, text: str, root: Mapping[str, Any], salt: str) -> None:
        self.text = text
        self.root = root
        self.salt = salt
        self._fields: dict[str, str] | None = None

    def field(self, name: str | None) -> str | None:
        if name is None:
            return None
        if self._fields is None:
            self._fields = {}
            for m in _FIELD_LINE.finditer(self.text):
                self._fields.setdefault(_key(m.group(1)), m.group(2))
        return self._fields.get(_key(name))

    def resolve(self, schema: Mapping[str, Any]) -> Mapping[str, Any]:
        ref = schema.get("$ref")
        if not isinstance(ref, str) or not ref.startswith("#/"):
            return schema
        node: Any = self.root
        for part in ref[2:].split("/"):
            node = node.get(part, {}) if isinstance(node, Mapping) else {}
        return node if isinstance(node, Mapping) else {}


def _type_of(schema: Mapping[str, Any]) -> str:
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if str(k).lower() != "null"), "null")
    if isinstance(kind, str):
        return kind.lower()  # Gemini's OpenAPI subset spells types in capitals
    if "properties" in schema:
        return "object"
    if "items" in schema:
        return "array"
    return "string"


def _first_alternative(schema: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The branch of an anyOf/oneOf to fill: all-`const` branches act as one enum."""
    for key in ("anyOf", "oneOf"):
        options = schema.get(key)
        if isinstance(options, list) and options:
            usable = [o for o in options if isinstance(o, Mapping) and o.get("type") != "null"]
            if usable and all("const" in o for o in usable):
                return {"enum": [o["const"] for o in usable]}
            return usable[0] if usable else options[0]
    return None


def _value(schema: Mapping[str, Any], ctx: _Context, name: str | None) -> Any:
    schema = ctx.resolve(schema)
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return pick_enum(schema["enum"], ctx.text, f"{ctx.salt}/{name}")
    alternative = _first_alternative(schema)
    if alternative is not None:
        return _value(alternative, ctx, name)
    if isinstance(schema.get("allOf"), list):
        merged: dict[str, Any] = {}
        for part in schema["allOf"]:
            if isinstance(part, Mapping):
                merged.update(ctx.resolve(part))
        return _value(merged, ctx, name)
    kind = _type_of(schema)
    if kind == "object":
        return _object(schema, ctx)
    if kind == "array":
        return _array(schema, ctx, name)
    if kind in ("number", "integer"):
        return _number(schema, ctx.field(name), kind == "integer")
    if kind == "boolean":
        raw = ctx.field(name)
        return raw is not None and raw.strip().lower() in _TRUE
    if kind == "null":
        return None
    return _string(schema, ctx, name)


def _object(schema: Mapping[str, Any], ctx: _Context) -> dict[str, Any]:
    props = schema.get("properties")
    if not isinstance(props, Mapping):
        return {}
    return {key: _value(sub, ctx, key) for key, sub in props.items() if isinstance(sub, Mapping)}


def _array(schema: Mapping[str, Any], ctx: _Context, name: str | None) -> list[Any]:
    items = schema.get("items")
    items = items if isinstance(items, Mapping) else {"type": "string"}
    min_items = int(schema.get("minItems", 0) or 0)
    max_items = schema.get("maxItems")
    raw = ctx.field(name)
    if raw is not None and _type_of(ctx.resolve(items)) != "object":
        parts = [p.strip() for p in re.split(r"[,;]", raw) if p.strip()]
        values = [_value(items, _Context(f"item: {p}", ctx.root, ctx.salt), "item") for p in parts]
    else:
        values = [_value(items, ctx, name) for _ in range(max(min_items, 1))]
    if isinstance(max_items, int):
        values = values[:max_items]
    while len(values) < min_items:
        values.append(_value(items, ctx, name))
    return values


def _number(schema: Mapping[str, Any], raw: str | None, integer: bool) -> int | float:
    value: float = 0.0
    if raw is not None:
        found = _NUMBER.search(raw.replace(",", ""))
        if found:
            value = float(found.group(0))
    low, high = schema.get("minimum"), schema.get("maximum")
    if isinstance(low, int | float) and value < low:
        value = float(low)
    if isinstance(high, int | float) and value > high:
        value = float(high)
    if integer or value.is_integer():
        return round(value)
    return value


def _string(schema: Mapping[str, Any], ctx: _Context, name: str | None) -> str:
    raw = ctx.field(name)
    fmt = schema.get("format")
    if raw is None:
        if isinstance(fmt, str) and fmt in _FORMAT_EXAMPLES:
            raw = _FORMAT_EXAMPLES[fmt]
        else:
            words = _WORD.findall(ctx.text[:400])[:6] or ["sample", "value"]
            raw = " ".join(words)
    max_len = schema.get("maxLength")
    if isinstance(max_len, int):
        raw = raw[:max_len]
    min_len = schema.get("minLength")
    if isinstance(min_len, int) and len(raw) < min_len:
        raw = raw + "x" * (min_len - len(raw))
    return raw


def generate_text(text: str, salt: str) -> str:
    """A short plausible reply (about 30-80 words) whose length grows with the input's."""
    words = _WORD.findall(text[:4000])
    target = 30 + min(40, len(words) // 8) + int(stable_fraction(salt, text) * 10)
    seen: dict[str, None] = {}
    for word in words:
        if len(word) > 3 and word.lower() not in _STOPWORDS:
            seen.setdefault(word.lower())
    topics = list(seen) or list(_PLACEHOLDERS)
    start = int(stable_fraction(text, salt) * len(_TEMPLATES))
    sentences: list[str] = []
    count = used = 0
    while count < target:
        template = _TEMPLATES[(start + len(sentences)) % len(_TEMPLATES)]
        slots = template.count("{}")
        fill = [topics[(used + k) % len(topics)] for k in range(slots)]
        used += slots
        sentence = template.format(*fill)
        sentences.append(sentence)
        count += sentence.count(" ") + 1
    return " ".join(sentences)


def is_text_only(schema: Mapping[str, Any] | None) -> bool:
    """True for the generation schema: one string property called `text` (or no schema)."""
    if schema is None:
        return True
    props = schema.get("properties")
    if not isinstance(props, Mapping) or set(props) != {"text"}:
        return False
    return _type_of(props["text"]) == "string" and "enum" not in props["text"]


def schema_answer(schema: Mapping[str, Any], text: str, salt: str) -> dict[str, Any]:
    """An object valid against `schema`, filled from `name: value` lines and enum mentions."""
    if is_text_only(schema):
        return {"text": generate_text(text, salt)}
    value = _value(schema, _Context(text, schema, salt), None)
    return value if isinstance(value, dict) else {"value": value}


def spoil(value: dict[str, Any], schema: Mapping[str, Any], draw: float, as_object: bool) -> Any:
    """Turn a valid answer invalid: a label not in the enum, a missing required key, or prose."""
    found = schema.get("properties")
    props: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
    enums = [k for k, s in props.items() if isinstance(s, Mapping) and "enum" in s and k in value]
    required = [k for k in schema.get("required", []) if k in value]
    ways = ["enum"] * bool(enums) + ["missing"] * bool(required) + ["prose"] * (not as_object)
    if not ways:
        ways = ["extra"]
    way = ways[int(draw * 1000) % len(ways)]
    broken = dict(value)
    if way == "enum":
        allowed = {str(v).lower() for v in props[enums[0]]["enum"]}
        broken[enums[0]] = next(w for w in ("unsure", "n/a", "<none>") if w not in allowed)
    elif way == "missing":
        del broken[required[0]]
    elif way == "prose":
        return "I think the answer is probably " + json.dumps(value)[:60]
    else:
        broken = {"__unexpected__": True} if not value else {k: [v] for k, v in value.items()}
    return broken


def answer(
    schema: Mapping[str, Any] | None,
    text: str,
    model: str,
    invalid_rate: float,
    as_object: bool,
    wrong_rate: float = 0.0,
) -> Answer:
    """The model's answer to `text` under `schema` (None = free text).

    `as_object` means the wire carries an object (a tool call's input), so prose is impossible.
    Whether an answer is invalid is fixed by hash(model, text): a retry on the same model fails
    the same way. The right answer is read off the text alone (the same for every model); a
    `wrong_rate` share of the valid ones is misread, also fixed by hash(model, text).
    """
    if schema is None:
        return Answer(generate_text(text, model))
    value = schema_answer(schema, text, "")
    draw = stable_fraction(model, text)
    if invalid_rate > 0 and draw < invalid_rate:
        broken = spoil(value, schema, draw / invalid_rate, as_object)
        if isinstance(broken, str):
            return Answer(broken, None, valid=False)
        return Answer(json.dumps(broken), broken, valid=False)
    wrong_draw = stable_fraction("wrong", model, text)
    if wrong_draw < wrong_rate and not is_text_only(schema):
        wrong = misread(value, schema, wrong_draw / wrong_rate)
        return Answer(json.dumps(wrong), wrong, wrong=wrong != value)
    return Answer(json.dumps(value), value)
