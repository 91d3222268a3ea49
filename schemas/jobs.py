"""Job messages (one model per kind) and ingest documents, parsed once from Kafka bytes."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any, Literal

import jsonschema
import pydantic_core
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from schemas.errors import JobError
from schemas.media import ImageRef
from schemas.per_schema import once_per_schema


class ParkedState(BaseModel):
    """What a job that waits on the retry topic carries from its earlier attempts."""

    model_config = ConfigDict(extra="ignore")

    not_before: float  # epoch seconds: not to be run again before then
    parks: int = Field(default=0, ge=0)
    attempts: int = Field(default=0, ge=0)
    cost_usd: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    providers_tried: list[str] = Field(default_factory=list)
    models_tried: list[str] = Field(default_factory=list)
    exhausted_providers: list[str] = Field(default_factory=list)  # skipped from now on
    retries: dict[str, int] = Field(default_factory=dict)  # model -> transient retries done
    skip_models: list[str] = Field(default_factory=list)  # answered invalidly in a batch
    first_failed_at: datetime | None = None
    last_error_type: str | None = None
    last_error: str = ""
    # Where the job first came from, for its dead letter.
    source_topic: str = ""
    source_partition: int = -1
    source_offset: int = -1


class JobBase(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    id: str = Field(min_length=1, max_length=512)
    tenant: str = "default"
    # Attribution below the tenant, carried to `results` and `usage` (and `usage_daily`).
    user: str | None = None
    agent: str | None = None
    session: str | None = None
    input: str = ""
    prompt: str | None = None
    min_tier: int | None = Field(default=None, ge=1, le=3)
    max_cost_usd: float | None = Field(default=None, gt=0)
    providers: list[str] | None = None
    max_output_tokens: int | None = Field(default=None, gt=0)
    metadata: dict[str, Any] = Field(default_factory=dict)
    images: list[ImageRef] = Field(default_factory=list)  # image inputs: vision models only
    # Set by replay: providers that already failed this job, and how often it was replayed.
    exclude_providers: list[str] = Field(default_factory=list)  # never route there
    avoid_providers: list[str] = Field(default_factory=list)  # route there only as a last resort
    replay_count: int = Field(default=0, ge=0)
    deadline: str | None = None  # ISO-8601 with zone, or "48h" from publish time; None = asap
    parked: ParkedState | None = None  # set while the job travels through the retry topic

    @property
    def doc_id(self) -> str | None:
        value = self.metadata.get("doc_id")
        return str(value) if value is not None else None

    @property
    def page(self) -> int | None:
        """The PDF page a document chunk starts on (set by ingest), for results to cite."""
        value = self.metadata.get("page")
        return value if isinstance(value, int) and not isinstance(value, bool) else None


class ClassifyJob(JobBase):
    kind: Literal["classify"]
    labels: list[str] = Field(min_length=1)

    @field_validator("labels")
    @classmethod
    def _labels_not_blank(cls, labels: list[str]) -> list[str]:
        if any(not label.strip() for label in labels):
            raise ValueError("labels must not be blank")
        return labels

    def output_schema(self) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {"label": {"type": "string", "enum": self.labels}},
            "required": ["label"],
            "additionalProperties": False,
        }


@once_per_schema
def _schema_problem(schema: Any) -> str | None:
    """Why `schema` fails the meta-schema (a slow check), or None."""
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        return str(exc.message)
    return None


class ExtractJob(JobBase):
    kind: Literal["extract"]
    json_schema: dict[str, Any] = Field(alias="schema")

    @field_validator("json_schema")
    @classmethod
    def _schema_is_valid(cls, schema: dict[str, Any]) -> dict[str, Any]:
        problem = _schema_problem(schema)
        if problem is not None:
            raise ValueError(f"schema is not a valid JSON Schema: {problem}")
        if schema.get("type", "object") != "object":
            raise ValueError("schema must describe an object")
        return schema

    def output_schema(self) -> dict[str, Any]:
        return self.json_schema


class GenerateJob(JobBase):
    kind: Literal["generate"]

    def output_schema(self) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {"text": {"type": "string"}},
            "required": ["text"],
            "additionalProperties": False,
        }


Job = Annotated[ClassifyJob | ExtractJob | GenerateJob, Field(discriminator="kind")]
TaskJob = ClassifyJob | ExtractJob | GenerateJob


class Document(BaseModel):
    """An `ingest` record: text to split and fan out into one job per task (and chunk)."""

    model_config = ConfigDict(extra="ignore")

    id: str = Field(min_length=1, max_length=512)
    text: str  # "" when the text is in the blob store (text_ref) or the document is images
    text_ref: str | None = None  # sha256 of the text in the blob store, when too big for a record
    paged: bool = False  # text holds pages separated by form feeds (PDF): chunks cite the page
    images: list[ImageRef] = Field(default_factory=list)  # scanned pages and image files
    unreadable: str | None = None  # why `frugal publish` could not convert the file
    title: str | None = None
    source: str | None = None
    tenant: str = "default"
    user: str | None = None
    agent: str | None = None
    session: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    tasks: list[dict[str, Any]] = Field(default_factory=list)
    replay_count: int = Field(default=0, ge=0)


_JOB_ADAPTER: TypeAdapter[TaskJob] = TypeAdapter(Job)


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"])
    msg = err["msg"].removeprefix("Value error, ")
    return f"{where}: {msg}" if where else msg


def decode_object(raw: bytes | str) -> dict[str, Any]:
    """Bytes of a Kafka record -> JSON object, or a one-line JobError."""
    if not raw.strip():
        raise JobError("record is not JSON: it is empty")
    try:
        data = pydantic_core.from_json(raw)  # ~4x faster than json.loads
    except ValueError:  # json.loads says what is wrong, in the words it always did
        data = None
    try:
        if data is None:
            text = raw.decode("utf-8") if isinstance(raw, bytes) else raw  # UTF-8 on the wire
            data = json.loads(text)
    except UnicodeDecodeError:
        raise JobError("record is not JSON: its bytes are not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise JobError(f"record is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise JobError(f"record is JSON {type(data).__name__}, expected an object")
    return data


def parse_job(raw: bytes | str | dict[str, Any], expected_kind: str | None = None) -> TaskJob:
    """Parse one job; raise JobError with a one-line reason when it is not a valid job."""
    data = raw if isinstance(raw, dict) else decode_object(raw)
    if expected_kind and data.get("kind", expected_kind) != expected_kind:
        raise JobError(f"kind {data.get('kind')!r} does not belong on the {expected_kind} topic")
    if expected_kind and "kind" not in data:
        data = {**data, "kind": expected_kind}
    try:
        return _JOB_ADAPTER.validate_python(data)
    except ValidationError as exc:
        raise JobError(f"invalid job: {_first_error(exc)}") from None


def parse_document(raw: bytes | str | dict[str, Any]) -> Document:
    data = raw if isinstance(raw, dict) else decode_object(raw)
    try:
        return Document.model_validate(data)
    except ValidationError as exc:
        raise JobError(f"invalid document: {_first_error(exc)}") from None


def job_to_json(job: TaskJob) -> bytes:
    return job.model_dump_json(by_alias=True, exclude_defaults=False).encode()
