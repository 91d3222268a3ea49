"""Which converter turns PDF, DOCX and HTML into text best: time and a quality check.

Run: .venv/bin/python -m bench.convert_compare   (samples are generated, nothing downloaded)
Quality = share of the sample's known sentences found in the output, and for HTML whether
navigation/footer boilerplate was dropped. Times are medians of 5 runs, in ms.
"""

from __future__ import annotations

import io
import statistics
import time
from collections.abc import Callable

from tests.support import doc_fixtures

SENTENCES = [
    f"Sentence number {i} talks about invoice {1000 + i} and its due date." for i in range(60)
]
PAGES = [" ".join(SENTENCES[i : i + 20]) for i in range(0, 60, 20)]


def timed(fn: Callable[[], str]) -> tuple[float, str]:
    runs = []
    out = ""
    for _ in range(5):
        start = time.perf_counter()
        out = fn()
        runs.append((time.perf_counter() - start) * 1000)
    return statistics.median(runs), out


def recall(text: str) -> float:
    flat = " ".join(text.split())
    return sum(s in flat for s in SENTENCES) / len(SENTENCES)


def main() -> None:
    from markitdown import MarkItDown, StreamInfo

    md = MarkItDown(enable_plugins=False)
    pdf = doc_fixtures.text_pdf(PAGES)
    docx = doc_fixtures.docx("Report", SENTENCES, [["item", "qty"], ["Licences", "3"]])
    html = doc_fixtures.html("Report", SENTENCES)

    def markitdown(data: bytes, ext: str) -> Callable[[], str]:
        return lambda: (
            md.convert_stream(io.BytesIO(data), stream_info=StreamInfo(extension=ext)).markdown
        )

    def pypdf_text() -> str:
        from pypdf import PdfReader

        return "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf)).pages)

    def pdfplumber_text() -> str:
        import pdfplumber

        with pdfplumber.open(io.BytesIO(pdf)) as doc:
            return "\n".join(p.extract_text() or "" for p in doc.pages)

    def pdfium_text() -> str:
        import pypdfium2

        doc = pypdfium2.PdfDocument(pdf)
        return "\n".join(doc[i].get_textpage().get_text_bounded() for i in range(len(doc)))

    def python_docx_text() -> str:
        import docx as python_docx

        return "\n".join(p.text for p in python_docx.Document(io.BytesIO(docx)).paragraphs)

    def trafilatura_text() -> str:
        import trafilatura

        return trafilatura.extract(html.decode(), output_format="markdown") or ""

    cases = [
        ("pdf", "markitdown (pdfminer)", markitdown(pdf, ".pdf")),
        ("pdf", "pypdf", pypdf_text),
        ("pdf", "pdfplumber", pdfplumber_text),
        ("pdf", "pypdfium2", pdfium_text),
        ("docx", "markitdown (mammoth)", markitdown(docx, ".docx")),
        ("docx", "python-docx", python_docx_text),
        ("html", "markitdown", markitdown(html, ".html")),
        ("html", "trafilatura", trafilatura_text),
    ]
    print(f"{'format':6} {'converter':24} {'ms':>8} {'recall':>7} boilerplate  table")
    for fmt, name, fn in cases:
        ms, out = timed(fn)
        boiler = "kept" if ("All rights reserved" in out or "About" in out) else "dropped"
        table = "md" if "| Licences" in out or "|Licences" in out.replace(" ", "") else "-"
        print(f"{fmt:6} {name:24} {ms:8.1f} {recall(out):7.2f} {boiler:11}  {table}")


if __name__ == "__main__":
    main()
