"""How each job kind is put to a model: instructions, input and the output schema."""

from __future__ import annotations

import json

from schemas.completion import CompletionRequest
from schemas.jobs import ClassifyJob, ExtractJob, GenerateJob, TaskJob

DEFAULT_MAX_OUTPUT = {"classify": 64, "extract": 1024, "generate": 1024}

_CLASSIFY = (
    "Classify the text into exactly one of these labels: {labels}. "
    'Answer with a JSON object {{"label": <label>}} and nothing else.'
)
_EXTRACT = (
    "Extract the fields described by this JSON Schema from the text. Answer with one JSON "
    "object valid against the schema and nothing else.\nSchema: {schema}"
)
_GENERATE = 'Follow the instructions. Answer with a JSON object {{"text": <your answer>}}.'


def instructions(job: TaskJob) -> str:
    if isinstance(job, ClassifyJob):
        base = _CLASSIFY.format(labels=", ".join(job.labels))
    elif isinstance(job, ExtractJob):
        base = _EXTRACT.format(schema=json.dumps(job.json_schema, separators=(",", ":")))
    else:
        base = _GENERATE
    return f"{base}\n{job.prompt}" if job.prompt else base


def output_allowance(job: TaskJob, route_max: int | None = None) -> int:
    """Output tokens we budget for: the job's own cap, the route's, or the kind's default."""
    return job.max_output_tokens or route_max or DEFAULT_MAX_OUTPUT[job.kind]


def build_request(job: TaskJob, max_output_tokens: int) -> CompletionRequest:
    name = {ClassifyJob: "classification", ExtractJob: "extraction", GenerateJob: "generation"}
    return CompletionRequest(
        system=instructions(job),
        prompt=job.input,
        output_schema=job.output_schema(),
        schema_name=name[type(job)],
        max_output_tokens=max_output_tokens,
    )
