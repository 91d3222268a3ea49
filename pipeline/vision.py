"""Image inputs of a job: which models may take them, what they cost, and their bytes."""

from __future__ import annotations

import base64

from pipeline.blobs import BlobStore
from providers.image_tokens import worst_case_image_tokens
from schemas.completion import ImageInput
from schemas.config import ModelConfig, StorageConfig
from schemas.jobs import TaskJob

VISION = "vision"  # the model capability that admits image input


def lacks_vision(model: ModelConfig, job: TaskJob) -> bool:
    return bool(job.images) and VISION not in model.capabilities


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
