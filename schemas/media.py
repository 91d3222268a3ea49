"""Images that travel with documents and jobs: by reference to the blob store, never inline."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

IMAGE_MEDIA_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")


class ImageRef(BaseModel):
    """One image input: its content hash (the blob's name beside the lake), type and origin."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    media_type: str
    bytes: int = Field(ge=0)
    width: int = Field(default=0, ge=0)
    height: int = Field(default=0, ge=0)
    source: str | None = None  # the file it came from
    page: int | None = Field(default=None, ge=1)  # the PDF page it renders

    def describe(self) -> str:
        """How logs and errors name the image: never its bytes."""
        where = f"{self.source} page {self.page}" if self.page else (self.source or "image")
        return f"{where} ({self.media_type}, sha256 {self.sha256[:12]})"
