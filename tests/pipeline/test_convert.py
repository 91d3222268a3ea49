"""Files to text and images: each format, page numbers, scans, and one-line reasons for
files that cannot be read. Fixtures are made by the libraries themselves, not committed."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.doc_fixtures import (
    corrupt_pdf,
    docx,
    eml,
    encrypted_pdf,
    html,
    invoice_image,
    pptx,
    scanned_pdf,
    text_pdf,
    xlsx,
)

from pipeline.convert import PAGE_BREAK, ConversionFailed, convert_file

FIELDS = {
    "invoice_number": "INV-7",
    "vendor": "Lumen Energy",
    "total": 10.0,
    "currency": "GBP",
    "due_date": "2026-02-02",
}


def test_pdf_text_keeps_its_pages_in_order() -> None:
    out = convert_file(Path("a.pdf"), text_pdf(["First page words here.", "Second page words."]))
    assert out.paged and not out.images
    pages = out.text.split(PAGE_BREAK)
    assert [p.strip() for p in pages] == ["First page words here.", "Second page words."]


def test_a_scanned_pdf_page_becomes_a_png_of_that_page() -> None:
    out = convert_file(Path("s.pdf"), scanned_pdf(["only pixels here"]))
    [image] = out.images
    assert image.page == 1 and image.media_type == "image/png"
    assert image.data.startswith(b"\x89PNG") and image.width > 600  # rendered at 150 dpi
    assert out.text.strip() == ""


@pytest.mark.parametrize(
    ("data", "reason"),
    [(corrupt_pdf(), "unreadable PDF: corrupt"), (encrypted_pdf("x" * 40), "encrypted")],
)
def test_broken_pdfs_fail_with_a_one_line_reason(data: bytes, reason: str) -> None:
    with pytest.raises(ConversionFailed) as caught:
        convert_file(Path("bad.pdf"), data)
    assert reason in str(caught.value) and "\n" not in str(caught.value)


def test_docx_becomes_markdown_with_heading_and_table() -> None:
    out = convert_file(Path("d.docx"), docx("Quarterly", ["Body text."], [["a", "b"], ["1", "2"]]))
    assert "# Quarterly" in out.text and "Body text." in out.text
    assert "| 1 | 2 |" in out.text


def test_html_keeps_the_article_and_drops_navigation_and_footer() -> None:
    article = "The northern office opened a new wing with room for forty engineers."
    out = convert_file(Path("i.html"), html("News", [article] * 3))
    assert article in out.text
    assert "All rights reserved" not in out.text and "var tracking" not in out.text


def test_eml_gives_headers_and_body() -> None:
    out = convert_file(Path("m.eml"), eml("Refund", "Please refund order 12."))
    assert "Subject: Refund" in out.text and "From: Ana" in out.text
    assert "Please refund order 12." in out.text


def test_eml_with_only_html_body_is_read_as_text() -> None:
    raw = (
        b"From: a@example.com\r\nSubject: Hi\r\nContent-Type: text/html\r\n\r\n"
        b"<html><body><p>Only an HTML body that is long enough to be the main text here.</p>"
        b"</body></html>"
    )
    assert "Only an HTML body" in convert_file(Path("h.eml"), raw).text


@pytest.mark.parametrize(("fmt", "media"), [("PNG", "image/png"), ("JPEG", "image/jpeg")])
def test_images_stay_images(fmt: str, media: str) -> None:
    out = convert_file(Path(f"x.{fmt.lower()}"), invoice_image(FIELDS, fmt))
    [image] = out.images
    assert image.media_type == media and (image.width, image.height) == (640, 360)
    assert out.text == ""


def test_a_truncated_image_is_refused() -> None:
    with pytest.raises(ConversionFailed, match="unreadable image"):
        convert_file(Path("x.png"), invoice_image(FIELDS)[:40])


def test_binary_with_a_text_suffix_is_refused() -> None:
    with pytest.raises(ConversionFailed, match="not UTF-8"):
        convert_file(Path("x.txt"), b"\xff\xfe\x00\x81binary")


def test_markdown_and_text_pass_through() -> None:
    assert convert_file(Path("r.md"), b"# Title\n\nbody").text == "# Title\n\nbody"


def test_pptx_slides_and_xlsx_sheets_become_markdown() -> None:
    slides = convert_file(Path("p.pptx"), pptx("Roadmap 2026", "Ship the vision pipeline"))
    assert "Roadmap 2026" in slides.text and "Ship the vision pipeline" in slides.text
    sheet = convert_file(Path("x.xlsx"), xlsx([["item", "qty"], ["Licences", 3]]))
    assert "| Licences | 3 |" in sheet.text


def test_a_huge_photo_is_scaled_down_before_it_is_sent() -> None:
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (4000, 3000), (200, 10, 10)).save(out, format="JPEG")
    [image] = convert_file(Path("big.jpg"), out.getvalue()).images
    assert (image.width, image.height) == (2048, 1536)
    assert Image.open(io.BytesIO(image.data)).size == (2048, 1536)
