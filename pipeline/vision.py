"""Image inputs of a job: which models may take them, what they cost, and their bytes."""

from __future__ import annotations

import base64
from collections.abc import Sequence

from providers.image_tokens import worst_case_image_tokens
from schemas.completion import ImageInput
from schemas.config import ModelConfig, StorageConfig
from schemas.jobs import TaskJob
from sinks.blobs import BlobStore

VISION = "vision"  # the model capability that admits image input


def lacks_vision(model: ModelConfig, job: TaskJob) -> bool:
    return bool(job.images) and VISION not in model.capabilities


def unseeable_images(models: Sequence[ModelConfig], job: TaskJob) -> str | None:
    """Why no configured model can take the job's images, or None when one can."""
    if not job.images or any(VISION in m.capabilities for m in models):
        return None
    what = ", ".join(i.describe() for i in job.images)
    return f"image input ({what}) but no configured model has the {VISION!r} capability"


def image_token_estimate(job: TaskJob) -> int:
    return sum(worst_case_image_tokens(i.width or 1024, i.height or 1024) for i in job.images)


def load_images(job: TaskJob, storage: StorageConfig) -> list[ImageInput]:
    """The job's images from the blob store, base64 for the wire; JobError if one is gone."""
    blobs = BlobStore(storage)
    return [
        ImageInput(
            media_type=ref.media_type,
            data_b64=base64.b64encode(blobs.get(ref.sha256)).decode(),
            label=ref.describe(),
        )
        for ref in job.images
    ]
