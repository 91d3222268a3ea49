"""Files to text (Markdown where structure helps) and images, with offline converters.

PDF: pypdfium2 (text per page, keeping page numbers; pages without a text layer are rendered
to PNG for vision models). DOCX, PPTX, XLSX, MSG: markitdown (headings and tables as
Markdown). HTML: trafilatura (drops navigation and footers), markitdown when it finds no main
text. EML: the standard library's e-mail parser. PNG/JPEG: the image itself.
See bench/convert_compare.py for the measurements behind these choices.
"""

from __future__ import annotations

import functools
import io
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import TYPE_CHECKING

from schemas.errors import JobError

if TYPE_CHECKING:
    from markitdown import MarkItDown

PAGE_BREAK = "\f"
TEXT_SUFFIXES = {".txt", ".md", ".markdown", ".rst", ".csv", ".log", ".text", ""}
MARKITDOWN_SUFFIXES = {".docx", ".pptx", ".xlsx", ".msg"}
HTML_SUFFIXES = {".html", ".htm", ".xhtml"}
IMAGE_SUFFIXES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}
SUPPORTED_SUFFIXES = (
    TEXT_SUFFIXES | MARKITDOWN_SUFFIXES | HTML_SUFFIXES | set(IMAGE_SUFFIXES) | {".pdf", ".eml"}
)
SCAN_DPI = 150  # scanned pages are rendered at this resolution
MAX_IMAGE_EDGE = 2048  # longer image edges are scaled down to this before sending
MIN_TEXT_CHARS = 16  # a PDF page with less text than this is treated as scanned


class ConversionFailed(JobError):
    """A file that cannot be turned into text or images (encrypted, corrupt, unknown)."""


@dataclass(frozen=True)
class ImageData:
    data: bytes
    media_type: str
    width: int
    height: int
    page: int | None = None


@dataclass
class Converted:
    text: str = ""
    paged: bool = False  # text is pages joined by PAGE_BREAK, page 1 first
    images: list[ImageData] = field(default_factory=list)
    converter: str = ""


def convert_file(path: Path, data: bytes) -> Converted:
    """The file's text and images; ConversionFailed with a one-line reason if it cannot be read."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".pdf":
            return convert_pdf(data)
        if suffix in IMAGE_SUFFIXES:
            return Converted(images=[image_data(data)], converter="image")
        if suffix in HTML_SUFFIXES:
            return Converted(text=html_to_text(data), converter="trafilatura")
        if suffix == ".eml":
            return Converted(text=eml_to_text(data), converter="email")
        if suffix in MARKITDOWN_SUFFIXES:
            return Converted(text=markitdown_text(data, suffix), converter="markitdown")
        return Converted(text=plain_text(data), converter="text")
    except ConversionFailed:
        raise
    except Exception as exc:  # converters raise many types on broken files; one line for all
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConversionFailed(f"cannot convert {suffix or 'file'}: {reason[:200]}") from None


def plain_text(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ConversionFailed("not UTF-8 text and not a supported document format") from None


def convert_pdf(data: bytes) -> Converted:
    import pypdfium2

    try:
        pdf = pypdfium2.PdfDocument(data)
    except pypdfium2.PdfiumError as exc:
        raise ConversionFailed(f"unreadable PDF: {_pdfium_reason(exc)}") from None
    try:
        pages: list[str] = []
        images: list[ImageData] = []
        for number in range(1, len(pdf) + 1):
            page = pdf[number - 1]
            text = _normalize_lines(page.get_textpage().get_text_bounded())
            if len(text) < MIN_TEXT_CHARS:
                images.append(_render_page(page, number))
                text = ""
            pages.append(text)
    finally:
        pdf.close()
    return Converted(PAGE_BREAK.join(pages), paged=True, images=images, converter="pypdfium2")


def _normalize_lines(text: str) -> str:
    """pdfium ends lines with CR LF; a form feed inside a page would split it in two."""
    return text.replace("\r\n", "\n").replace("\r", "\n").replace(PAGE_BREAK, "\n").strip()


def _pdfium_reason(exc: Exception) -> str:
    text = str(exc)
    if "password" in text.lower():
        return "encrypted (password required)"
    detail = text.split(":")[-1].strip(" .)(")
    return f"corrupt ({detail})" if detail else "corrupt"


def _render_page(page: object, number: int) -> ImageData:
    picture = page.render(scale=SCAN_DPI / 72).to_pil()  # type: ignore[attr-defined]
    out = io.BytesIO()
    picture.save(out, format="PNG", optimize=True)
    return ImageData(out.getvalue(), "image/png", picture.width, picture.height, page=number)


def image_data(data: bytes) -> ImageData:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as picture:
            picture.verify()
            fmt, (width, height) = picture.format, picture.size
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise ConversionFailed(f"unreadable image: {exc}") from None
    media = {"PNG": "image/png", "JPEG": "image/jpeg"}.get(fmt or "")
    if media is None:
        raise ConversionFailed(f"image format {fmt} is not supported (PNG or JPEG)")
    if max(width, height) > MAX_IMAGE_EDGE:
        return _shrunk(data, fmt or "PNG", media)
    return ImageData(data, media, width, height)


def _shrunk(data: bytes, fmt: str, media: str) -> ImageData:
    """Providers scale big images down anyway (and refuse very big ones): send less."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as picture:
        picture.thumbnail((MAX_IMAGE_EDGE, MAX_IMAGE_EDGE))
        out = io.BytesIO()
        picture.save(out, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))
        return ImageData(out.getvalue(), media, picture.width, picture.height)


def html_to_text(data: bytes) -> str:
    import trafilatura

    html = data.decode("utf-8", errors="replace")
    text = trafilatura.extract(html, output_format="markdown", include_tables=True)
    return text if text else markitdown_text(data, ".html")


def eml_to_text(data: bytes) -> str:
    message = BytesParser(policy=policy.default).parsebytes(data)
    if not isinstance(message, EmailMessage) or not (message["From"] or message["Subject"]):
        raise ConversionFailed("not an e-mail message (no From or Subject header)")
    headers = [f"{h}: {message[h]}" for h in ("From", "To", "Date", "Subject") if message[h]]
    body = message.get_body(preferencelist=("plain", "html"))
    text = ""
    if body is not None:
        content = body.get_content()
        text = html_to_text(content.encode()) if body.get_content_subtype() == "html" else content
    attachments = [a.get_filename() for a in message.iter_attachments() if a.get_filename()]
    lines = [*headers, "", text.strip()]
    if attachments:
        lines += ["", "Attachments: " + ", ".join(str(a) for a in attachments)]
    return "\n".join(lines).strip()


@functools.cache
def _markitdown() -> MarkItDown:
    from markitdown import MarkItDown

    return MarkItDown(enable_plugins=False)


def markitdown_text(data: bytes, suffix: str) -> str:
    from markitdown import StreamInfo

    result = _markitdown().convert_stream(
        io.BytesIO(data), stream_info=StreamInfo(extension=suffix)
    )
    return result.markdown.strip()
