"""A submitted provider batch as it is kept on Kafka (`<prefix>.batches`): enough to resume
polling it after a crash and to map each custom id back to its job."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict


class BatchItem(BaseModel):
    model_config = ConfigDict(extra="ignore")

    custom_id: str
    job: dict[str, Any]  # the job as published (with its parked story, if any)
    created_at: datetime  # when the job was first published
    reason: str = ""  # route reason
    estimated_cost_usd: float = 0.0
    worst_case_usd: float = 0.0
    max_output_tokens: int = 0


class BatchTicket(BaseModel):
    model_config = ConfigDict(extra="ignore")

    batch_id: str
    provider: str
    model: str  # routing name
    submitted_at: datetime
    worker: str
    items: list[BatchItem]
