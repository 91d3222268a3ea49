"""Realistic sample workloads (support tickets, invoices, documents) with known answers.

Tests and benchmarks generate sets from these; the demo publishes the bundle made by
`python -m bench.samples` (written to `cli/samples/`). Each job carries its expected answer in `metadata.expected`.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from cli.demo_samples import CURRENCIES, INVOICE_SCHEMA

LABELS = ["billing", "bug", "feature", "account", "shipping"]
_TICKETS: dict[str, list[str]] = {
    "billing": [
        "I was charged twice for my subscription this month. Please look into this billing problem and refund the duplicate payment.",
        "Our invoice shows 14 seats but we only have 9 users. Can billing correct the amount before the card is charged again?",
        "The billing page still lists the old VAT number, so the receipts are wrong for our accountants.",
    ],
    "bug": [
        "The export button crashes the app every time I pick CSV. Looks like a bug since the last update.",
        "After upgrading to 3.2 the dashboard shows a blank chart; the console logs a TypeError. Definitely a bug.",
        "Search returns results from the wrong workspace. This bug leaks titles across teams.",
    ],
    "feature": [
        "Would love a dark mode. Is that feature on the roadmap?",
        "Please add a feature to schedule reports weekly instead of only daily.",
        "We need SSO with Okta; this feature decides whether we renew.",
    ],
    "account": [
        "I can't log in to my account after changing my email address. The reset link never arrives.",
        "Please transfer account ownership from Maria to Jonas, Maria has left the company.",
        "How do I delete my account and all the data you hold about me?",
    ],
    "shipping": [
        "My order #{n} has not arrived after 12 days; the shipping tracker has not moved since Tuesday.",
        "The package arrived damaged. Can shipping send a replacement to the same address?",
        "Can you change the shipping address on order #{n}? We moved offices last week.",
    ],
}
_NAMES = ["Ana", "Ben", "Chloe", "Dev", "Emeka", "Fatima", "Goran", "Hana", "Ivo", "Jun"]
_VENDORS = [
    "Acme Supplies GmbH",
    "Northwind Traders",
    "Blue Harbor Logistics",
    "Kestrel Software Ltd",
    "Orbit Office Furniture",
    "Lumen Energy",
]


_TOPICS = {
    "billing": "Quarterly billing review. Finance reconciled billing disputes, refunds and late card payments across regions.",
    "bug": "Incident review. A bug in the sync service caused duplicate records; engineers traced the bug to a retry loop.",
    "feature": "Product planning notes. Customers asked for a reporting feature and an API feature for bulk exports.",
    "account": "Security memo. Account takeover attempts rose; every account now requires two-factor sign-in.",
    "shipping": "Logistics update. Shipping delays at the northern warehouse; shipping partners added weekend routes.",
}


def support_tickets(n: int, seed: int = 7, prefix: str = "ticket") -> list[dict[str, Any]]:
    rng = random.Random(seed)
    jobs = []
    for i in range(n):
        label = LABELS[i % len(LABELS)]
        body = rng.choice(_TICKETS[label]).format(n=rng.randint(10000, 99999))
        text = f"From: {rng.choice(_NAMES)}\nSubject: help needed\n\n{body}\n\nThanks,\n{rng.choice(_NAMES)}"
        jobs.append(
            {
                "id": f"{prefix}-{i:05d}",
                "kind": "classify",
                "tenant": rng.choice(["acme", "globex"]),
                "input": text,
                "labels": LABELS,
                "metadata": {"expected": {"label": label}},
            }
        )
    return jobs


def invoices(n: int, seed: int = 11, prefix: str = "invoice") -> list[dict[str, Any]]:
    rng = random.Random(seed)
    jobs = []
    for i in range(n):
        expected = {
            "invoice_number": f"INV-{rng.randint(2024, 2026)}-{i:04d}",
            "vendor": rng.choice(_VENDORS),
            "total": round(rng.uniform(40, 9000), 2),
            "currency": rng.choice(CURRENCIES),
            "due_date": f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
        }
        lines = "\n".join(
            f"  {rng.choice(['Consulting', 'Licences', 'Freight', 'Support plan', 'Hardware'])}  x{rng.randint(1, 9)}"
            for _ in range(rng.randint(2, 5))
        )
        text = (
            f"INVOICE\nInvoice number: {expected['invoice_number']}\nVendor: {expected['vendor']}\n"
            f"Bill to: {rng.choice(['Globex Corp', 'Initech', 'Umbrella plc'])}\nItems:\n{lines}\n"
            f"Total: {expected['total']}\nCurrency: {expected['currency']}\nDue date: {expected['due_date']}\n"
            "Payment terms: net 30. Bank transfer only."
        )
        jobs.append(
            {
                "id": f"{prefix}-{i:05d}",
                "kind": "extract",
                "tenant": "acme",
                "input": text,
                "schema": INVOICE_SCHEMA,
                "metadata": {"expected": expected},
            }
        )
    return jobs


def documents(
    n: int, seed: int = 13, paragraphs: int = 6, prefix: str = "doc"
) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    docs = []
    for i in range(n):
        topic = LABELS[i % len(LABELS)]
        paras = [_TOPICS[topic]] + [
            f"Section {k}: {rng.choice(list(_TOPICS.values())).split('.')[1].strip().lower()} "
            f"was discussed by {rng.choice(_NAMES)} with {rng.randint(2, 40)} participants."
            for k in range(1, paragraphs)
        ]
        docs.append(
            {
                "id": f"{prefix}-{i:04d}",
                "title": f"{topic.title()} report {i}",
                "source": "samples",
                "text": "\n\n".join(paras),
                "tasks": [
                    {
                        "name": "topic",
                        "kind": "classify",
                        "labels": LABELS,
                        "metadata": {"expected": {"label": topic}},
                    },
                    {
                        "name": "summary",
                        "kind": "generate",
                        "prompt": "Summarize the document in two sentences.",
                    },
                ],
            }
        )
    return docs


SAMPLE_INVOICES: dict[str, dict[str, Any]] = {
    "invoice-INV-2026-0042.pdf": {
        "invoice_number": "INV-2026-0042",
        "vendor": "Kestrel Software Ltd",
        "total": 1890.0,
        "currency": "GBP",
        "due_date": "2026-04-30",
    },
    "receipt-photo.png": {
        "invoice_number": "INV-2026-0107",
        "vendor": "Blue Harbor Logistics",
        "total": 312.4,
        "currency": "EUR",
        "due_date": "2026-02-15",
    },
}


def invoice_lines(fields: dict[str, Any]) -> list[str]:
    return [
        "INVOICE",
        f"Invoice number: {fields['invoice_number']}",
        f"Vendor: {fields['vendor']}",
        f"Total: {fields['total']}",
        f"Currency: {fields['currency']}",
        f"Due date: {fields['due_date']}",
    ]


def invoice_image(fields: dict[str, Any], fmt: str = "PNG") -> bytes:
    """A photo-like invoice: the text drawn in pixels, and also (for the simulator, which cannot
    read pixels) in the image's own metadata: a PNG text chunk or a JPEG comment."""
    import io

    from PIL import Image, ImageDraw, PngImagePlugin

    from providers.sim.vision import GOLD_TEXT_KEY

    lines = invoice_lines(fields)
    picture = Image.new("RGB", (640, 360), (250, 248, 240))
    draw = ImageDraw.Draw(picture)
    for n, line in enumerate(lines):
        draw.text((30, 30 + 26 * n), line, fill=(20, 20, 20))
    out = io.BytesIO()
    text = "\n".join(lines)
    if fmt == "PNG":
        info = PngImagePlugin.PngInfo()
        info.add_text(GOLD_TEXT_KEY, text)
        picture.save(out, format="PNG", pnginfo=info)
    else:
        picture.save(out, format="JPEG", quality=85, comment=text.encode())
    return out.getvalue()


def invoice_pdf(fields: dict[str, Any]) -> bytes:
    """A one-page invoice PDF with a text layer (fpdf2, a test extra: samples are committed)."""
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("helvetica", size=12)
    pdf.add_page()
    pdf.multi_cell(0, 8, "\n".join([*invoice_lines(fields), "Payment terms: net 30."]))
    return bytes(pdf.output())


def write_file_samples(directory: Path) -> None:
    """The demo's files: an invoice PDF and an invoice photo (PNG), fields known."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, fields in SAMPLE_INVOICES.items():
        data = invoice_pdf(fields) if name.endswith(".pdf") else invoice_image(fields)
        (directory / name).write_bytes(data)


def write_bundle(directory: Path) -> None:
    """The demo's bundled sample: 150 tickets, 60 invoices, 12 documents (2 tasks each)."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, jobs in (("tickets.jsonl", support_tickets(150)), ("invoices.jsonl", invoices(60))):
        (directory / name).write_text("".join(json.dumps(j) + "\n" for j in jobs))
    (directory / "documents.jsonl").write_text(
        "".join(json.dumps({"kind": "ingest", **d}) + "\n" for d in documents(12))
    )


if __name__ == "__main__":
    bundle = Path(__file__).resolve().parents[1] / "cli" / "samples"
    write_bundle(bundle)
    write_file_samples(bundle / "files")
