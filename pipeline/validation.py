"""Checking a model's answer against what the job asked for; a failure is a failed attempt."""

from __future__ import annotations

import json
from typing import Any

import jsonschema

from schemas.errors import InvalidOutput
from schemas.jobs import ClassifyJob, TaskJob
from schemas.per_schema import once_per_schema


@once_per_schema
def _validator(schema: Any) -> jsonschema.protocols.Validator:
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    return cls(schema)


def _as_object(output: Any) -> dict[str, Any]:
    if isinstance(output, str):
        try:
            output = json.loads(output)
        except json.JSONDecodeError:
            raise InvalidOutput("answer is not JSON") from None
    if not isinstance(output, dict):
        raise InvalidOutput(f"answer is JSON {type(output).__name__}, expected an object")
    return output


def validate_output(job: TaskJob, output: Any) -> dict[str, Any]:
    """The validated output object, or InvalidOutput with a one-line reason."""
    obj = _as_object(output)
    if isinstance(job, ClassifyJob):
        label = obj.get("label")
        if label not in job.labels:
            raise InvalidOutput(f"label {label!r} is not one of the job's labels")
        return {"label": label}
    validator = _validator(job.output_schema())
    if validator.is_valid(obj):  # the common case; finding the best error is slow
        return obj
    error = jsonschema.exceptions.best_match(validator.iter_errors(obj))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(root)"
        raise InvalidOutput(f"answer fails the schema at {where}: {error.message[:200]}")
    return obj
