"""The whole `frugal.toml`, parsed once into pydantic models."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

JOB_KINDS: tuple[str, ...] = ("classify", "extract", "generate", "ingest")
ProviderKind = Literal["openai", "anthropic", "gemini", "azure-openai"]
BudgetScope = Literal["global", "provider", "model", "kind", "tenant", "user"]
BudgetWindow = Literal["hour", "day", "month", "total"]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class KafkaConfig(Section):
    bootstrap: str = "embedded"  # "host:port[,host:port]" or "embedded"
    topic_prefix: str = "frugal"
    partitions: int = Field(default=4, ge=1)
    replication_factor: int = Field(default=1, ge=1)
    group_id: str = "frugal-workers"  # default: "<topic_prefix>-workers"
    commit_interval_s: float = Field(default=1.0, gt=0)
    # A worker silent this long leaves the group and its partitions move to the others.
    # (Tansu also holds a new group's first join for about half of it.)
    session_timeout_s: float = Field(default=10.0, ge=2)
    # Records stay under the broker's message.max.bytes: a bigger document's text is stored
    # beside the lake (blob store) and the record carries its hash instead.
    max_message_bytes: int = Field(default=1_000_000, ge=10_000)

    @model_validator(mode="after")
    def _group_follows_prefix(self) -> KafkaConfig:
        """Workers of different topic prefixes never share a consumer group by default."""
        if "group_id" not in self.model_fields_set:
            self.group_id = f"{self.topic_prefix}-workers"
        return self

    def topic(self, kind: str, suffix: str = "") -> str:
        return f"{self.topic_prefix}.{kind}{'.' + suffix if suffix else ''}"


class StorageConfig(Section):
    data_dir: Path = Path("./data")
    flush_interval_s: float = Field(default=1.0, gt=0)
    flush_rows: int = Field(default=5000, ge=1)
    # Rows are fsynced to a local journal before their record is acked (sinks/journal.py).
    journal: bool = True
    # The compacted lake (sinks/compaction.py): workers fold closed flush files into it.
    compact: bool = True
    compact_interval_s: float = Field(default=60.0, gt=0)
    compact_after_s: float = Field(default=60.0, ge=0)  # flush files younger than this wait
    compact_grace_s: float = Field(default=60.0, ge=0)  # folded files stay readable this long
    raw_retention_days: float | None = Field(default=None, gt=0)  # None: keep raw rows forever
    # Lake catalog: "sqlite:<path>" (default <data_dir>/lake.sqlite) or "postgres:<libpq dsn>".
    catalog: str | None = None
    lake_url: str | None = None  # s3://bucket/prefix, set from an object-store `data_dir`
    local_dir: Path = Path("./data")  # flush files and quarantine when data_dir is an object store
    s3_endpoint: str | None = None  # e.g. http://127.0.0.1:9000 for an S3-compatible server

    @model_validator(mode="before")
    @classmethod
    def _object_store_data_dir(cls, values: Any) -> Any:
        if isinstance(values, dict) and str(values.get("data_dir", "")).startswith("s3://"):
            values = dict(values)
            values["lake_url"] = str(values["data_dir"]).rstrip("/")
            values["data_dir"] = values.get("local_dir", "./data")
        return values

    @property
    def catalog_path(self) -> Path:
        return self.data_dir / "frugal.duckdb"

    @property
    def lake_dir(self) -> Path:
        return self.data_dir / "lake"

    @property
    def journal_dir(self) -> Path:
        return self.data_dir / "journal"


class ProviderConfig(Section):
    name: str
    kind: ProviderKind = "openai"
    base_url: str
    api_key_env: str | None = None
    api_key: SecretStr | None = None  # filled from api_key_env at load; never logged
    profile: str | None = None  # endpoint quirks: deepseek, groq, mistral, openrouter, ...
    api_version: str | None = None  # azure-openai
    rpm: int | None = Field(default=None, gt=0)
    tpm: int | None = Field(default=None, gt=0)
    max_concurrency: int = Field(default=32, ge=1)
    timeout_s: float = Field(default=60.0, gt=0)
    batch: bool | None = None  # use the provider's batch API; None = yes for public APIs
    batch_discount: float = Field(default=0.5, gt=0, le=1)  # batch price = this x list price


class ModelConfig(Section):
    name: str  # routing name, unique
    provider: str
    model: str  # the provider's model id
    tier: int = Field(default=1, ge=1, le=3)
    context_window: int = Field(default=128_000, gt=0)
    max_output_tokens: int = Field(default=4096, gt=0)
    capabilities: list[str] = Field(default_factory=list)
    input_per_mtok: float | None = Field(default=None, ge=0)
    output_per_mtok: float | None = Field(default=None, ge=0)
    cached_input_per_mtok: float | None = Field(default=None, ge=0)
    cache_write_per_mtok: float | None = Field(default=None, ge=0)
    free: bool = False  # explicitly unpriced (local vLLM/Ollama)
    catalog_id: str | None = None  # price-catalog model id when it differs from `model`


class RouteConfig(Section):
    min_tier: int = Field(default=1, ge=1, le=3)
    providers: list[str] | None = None  # allowed providers; None = all
    prefer: list[str] = Field(
        default_factory=list
    )  # preferred providers, tried first at equal cost
    max_cost_usd: float | None = Field(default=None, gt=0)
    max_output_tokens: int | None = Field(default=None, gt=0)
    chunk_tokens: int = Field(default=2000, gt=0)  # ingest: split documents into chunks this size
    tasks: list[dict[str, Any]] = Field(default_factory=list)  # ingest: tasks for documents without
    # Quality: a share of answers re-asked of a trusted model (see pipeline/audit.py).
    audit_rate: float = Field(default=0.0, ge=0, le=1)
    audit_model: str | None = None  # default: top tier, priciest
    min_accuracy: float | None = Field(default=None, ge=0, le=1)
    deadline: str | None = None  # default job deadline ("48h", ISO-8601); None = asap


_DEFAULT_ROUTE = RouteConfig()  # never changed: what `Config.route` gives a kind without a route


class BudgetConfig(Section):
    scope: BudgetScope = "global"
    match: str | None = None
    window: BudgetWindow = "day"
    limit_usd: float = Field(gt=0)

    @model_validator(mode="after")
    def _match_required(self) -> BudgetConfig:
        if self.scope != "global" and not self.match:
            raise ValueError(f"budgets with scope = {self.scope!r} need a `match`")
        return self


class WorkerConfig(Section):
    max_in_flight: int = Field(default=256, ge=1)  # records not yet durable, per worker
    buffer_per_partition: int = Field(default=4096, ge=1)  # records fetched ahead, per partition
    status_interval_s: float = Field(default=10.0, gt=0)
    shutdown_grace_s: float = Field(default=30.0, gt=0)
    metrics_port: int | None = Field(default=None, ge=0, le=65535)  # Prometheus /metrics; 0 = any
    metrics_host: str = "127.0.0.1"
    # Worker processes one `frugal worker` runs in the group: a number, or "auto" (one a core).
    processes: Annotated[int, Field(ge=1)] | Literal["auto"] = 1


class RetryConfig(Section):
    max_retries: int = Field(default=3, ge=0)  # per model, for transient errors
    base_delay_s: float = Field(default=0.5, ge=0)
    max_delay_s: float = Field(default=30.0, gt=0)
    park_after_s: float = Field(default=10.0, gt=0)  # longer waits go to the retry topic
    # Times a job may wait on the retry topic for a provider whose breaker is open.
    max_parks: int = Field(
        default=5, ge=0
    )  # waits on the retry topic: open breaker or only 429s left


class SimModelConfig(Section):
    invalid_rate: float = Field(default=0.0, ge=0, le=1)  # share of answers that fail validation
    wrong_rate: float = Field(default=0.0, ge=0, le=1)  # share of valid answers that are wrong
    reasoning_tokens: int = Field(default=0, ge=0)  # per answer
    cached_share: float = Field(default=0.0, ge=0, le=1)  # share of input read from cache


class SimBatchConfig(Section):
    completion_delay_s: float = Field(default=0.5, ge=0)  # a batch ends this long after creation
    fail_rate: float = Field(default=0.0, ge=0, le=1)  # share of batched requests that error
    expire: bool = False  # batches expire (every request unanswered) instead of completing
    max_open: int | None = Field(default=None, gt=0)  # batch queue limit: creation refused above


class SimConfig(Section):
    batch: SimBatchConfig = Field(default_factory=lambda: SimBatchConfig())
    latency_ms: float = Field(default=0.0, ge=0)
    rpm: int | None = Field(default=None, gt=0)  # the provider's real limit; 429 above it
    fail_rate: float = Field(default=0.0, ge=0, le=1)  # share of calls answered with a 5xx
    overloaded_rate: float = Field(default=0.0, ge=0, le=1)  # share answered 529/503
    overloaded_matching: str | None = None  # calls whose prompt contains this: always 529/503
    api_key: str | None = None  # when set, requests must carry it
    models: dict[str, SimModelConfig] = Field(default_factory=dict)


class ReportConfig(Section):
    frontier_model: str | None = (
        None  # the baseline "frontier model alone"; default: top tier, priciest
    )


class BatchConfig(Section):
    """Provider batch APIs: work whose deadline allows waits for half the price."""

    enabled: bool = True
    window_s: float = Field(default=86400.0, gt=0)  # the providers' completion window
    max_wait_s: float = Field(default=60.0, ge=0)  # gather requests this long before submitting
    poll_interval_s: float = Field(default=30.0, gt=0)
    max_requests: int = Field(default=10_000, ge=1)  # per batch (capped by the provider's limit)


class Config(Section):
    kafka: KafkaConfig = Field(default_factory=KafkaConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    providers: list[ProviderConfig] = Field(default_factory=list)
    models: list[ModelConfig] = Field(default_factory=list)
    routes: dict[str, RouteConfig] = Field(default_factory=dict)
    budgets: list[BudgetConfig] = Field(default_factory=list)
    worker: WorkerConfig = Field(default_factory=WorkerConfig)
    retry: RetryConfig = Field(default_factory=RetryConfig)
    sim: SimConfig = Field(default_factory=SimConfig)
    report: ReportConfig = Field(default_factory=ReportConfig)
    batch: BatchConfig = Field(default_factory=lambda: BatchConfig())

    @field_validator("routes")
    @classmethod
    def _known_route_kinds(cls, routes: dict[str, RouteConfig]) -> dict[str, RouteConfig]:
        unknown = sorted(set(routes) - set(JOB_KINDS))
        if unknown:
            raise ValueError(f"unknown job kind(s) {unknown}; expected one of {list(JOB_KINDS)}")
        return routes

    @model_validator(mode="after")
    def _cross_references(self) -> Config:
        names = [p.name for p in self.providers]
        if len(set(names)) != len(names):
            raise ValueError("provider names must be unique")
        model_names = [m.name for m in self.models]
        if len(set(model_names)) != len(model_names):
            raise ValueError("model names must be unique")
        for m in self.models:
            if m.provider not in names:
                raise ValueError(f"model {m.name!r} names unknown provider {m.provider!r}")
        for kind, route in self.routes.items():
            if route.audit_model is not None and route.audit_model not in model_names:
                raise ValueError(
                    f"routes.{kind}.audit_model names unknown model {route.audit_model!r}"
                )
        return self

    def route(self, kind: str) -> RouteConfig:
        """The kind's route, or the defaults (one frozen instance: routing asks ~20 times a
        job, and building a RouteConfig each time cost more than the routing)."""
        found = self.routes.get(kind)
        return found if found is not None else _DEFAULT_ROUTE

    def provider(self, name: str) -> ProviderConfig:
        for p in self.providers:
            if p.name == name:
                return p
        raise KeyError(name)

    def model(self, name: str) -> ModelConfig:
        for m in self.models:
            if m.name == name:
                return m
        raise KeyError(name)
