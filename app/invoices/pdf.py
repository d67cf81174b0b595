"""Invoice PDFs (fpdf2): the seller, number, dates, period, billing details, lines, totals,
what paid, status."""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from pathlib import Path

from fpdf import FPDF
from fpdf.enums import XPos, YPos

from app.invoices.documents import InvoiceDocument
from app.invoices.models import InvoiceKind, InvoiceStatus
from app.kit.money import format_units

# What the core font (Latin-1) cannot show but has a plain stand-in for.
_CORE_STAND_INS = str.maketrans({"\u2013": "-", "\u2014": "-", "\u2019": "'", "\u2022": "*"})

# The PDF core font (Helvetica, Latin-1, instant) when every text fits it; otherwise a
# Unicode TrueType font when the system has one (loading it costs about 0.3 s per PDF),
# and failing that, the core font with what it cannot show replaced.
_FONT_DIRS = (
    Path("/usr/share/fonts/truetype/dejavu"),
    Path("/usr/share/fonts/dejavu"),
    Path("/usr/local/share/fonts"),
    Path("/Library/Fonts"),
)

_KIND_TITLES = {
    InvoiceKind.CREDIT_PURCHASE: "Prepaid credits",
    InvoiceKind.MONTHLY_USAGE: "Monthly usage",
}
_STATUS_TEXT = {
    InvoiceStatus.OPEN: "OPEN",
    InvoiceStatus.PAID: "PAID",
    InvoiceStatus.PAYMENT_FAILED: "PAYMENT FAILED",
    InvoiceStatus.VOID: "VOID",
}


@lru_cache(maxsize=1)
def _unicode_fonts() -> tuple[Path, Path] | None:
    for folder in _FONT_DIRS:
        regular, bold = folder / "DejaVuSans.ttf", folder / "DejaVuSans-Bold.ttf"
        if regular.is_file() and bold.is_file():
            return regular, bold
    return None


def _dollars(cents: int) -> str:
    return f"${format_units(cents * 1_000_000)}"


def _date(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d") if value else ""


def _latin1(text: str) -> bool:
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True


def _texts(document: InvoiceDocument) -> list[str]:
    texts = [document.number, document.failure_message or ""]
    texts += document.seller.printed_lines()
    if document.payment_method is not None:
        texts.append(document.payment_method.text())
    texts += [line.description for line in document.lines]
    address = document.billing_address
    if address is not None:
        texts += address.printed_lines()
        if address.tax_id:
            texts.append(address.tax_id.value)
    return texts


class _Pdf(FPDF):
    def __init__(self, *, unicode: bool) -> None:
        super().__init__(format="A4")
        fonts = _unicode_fonts() if unicode else None
        self.unicode_ok = fonts is not None
        if fonts is not None:
            self.add_font("Body", "", str(fonts[0]))
            self.add_font("Body", "B", str(fonts[1]))
            self.body_font = "Body"
        else:
            self.body_font = "Helvetica"
        self.set_auto_page_break(auto=True, margin=18)

    def text_of(self, value: str) -> str:
        if self.unicode_ok:
            return value
        value = value.translate(_CORE_STAND_INS)
        return value.encode("latin-1", "replace").decode("latin-1")

    def line_text(self, value: str, *, size: float = 10, bold: bool = False, h: float = 5) -> None:
        self.set_font(self.body_font, "B" if bold else "", size)
        self.multi_cell(0, h, self.text_of(value), new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    def row(self, cells: list[tuple[str, float, str]], *, bold: bool = False) -> None:
        self.set_font(self.body_font, "B" if bold else "", 10)
        for text, width, align in cells:
            self.cell(width, 7, self.text_of(text), border="B", align=align)
        self.ln(7)


def render(document: InvoiceDocument) -> bytes:
    """The invoice as a PDF; deterministic for a given document."""
    pdf = _Pdf(unicode=not all(_latin1(text) for text in _texts(document)))
    pdf.set_title(f"Invoice {document.number}")
    pdf.set_author(pdf.text_of(document.seller.name))
    pdf.set_creation_date(document.issued_at)
    pdf.add_page()

    for index, line in enumerate(document.seller.printed_lines()):
        pdf.line_text(line, size=16 if index == 0 else 9, bold=index == 0, h=7 if index == 0 else 4)
    pdf.ln(6)
    title = "Invoice preview (not issued)" if document.draft else "Invoice"
    pdf.line_text(f"{title} {document.number}", size=14, bold=True, h=8)
    facts = [
        ("Kind", _KIND_TITLES[document.kind]),
        ("Status", _STATUS_TEXT[document.status]),
        ("Issued", _date(document.issued_at)),
    ]
    if document.period_text:
        facts.append(("Period", document.period_text))
    if document.paid_at:
        facts.append(("Paid", _date(document.paid_at)))
    method = document.payment_method
    if method is not None:
        label = "Paid with" if document.status is InvoiceStatus.PAID else "Charged to"
        facts.append((label, method.text()))
    facts.append(("Currency", document.currency.upper()))
    for label, value in facts:
        pdf.line_text(f"{label}: {value}")
    pdf.ln(4)

    pdf.line_text("Bill to", bold=True)
    address = document.billing_address
    if address is None:
        pdf.line_text("No billing address on file.")
    else:
        for line in address.printed_lines():
            pdf.line_text(line)
        if address.tax_id:
            pdf.line_text(f"Tax ID ({address.tax_id.type}): {address.tax_id.value}")
    pdf.ln(4)

    width = pdf.epw
    columns = (width * 0.55, width * 0.1, width * 0.175, width * 0.175)
    pdf.row(
        [
            ("Description", columns[0], "L"),
            ("Qty", columns[1], "R"),
            ("Unit price", columns[2], "R"),
            ("Amount", columns[3], "R"),
        ],
        bold=True,
    )
    for item in document.lines:
        description = item.description
        if item.exact_units is not None:
            description += f" (${format_units(item.exact_units)} exact)"
        description = pdf.text_of(description)
        if pdf.get_string_width(description) > columns[0] - 2:
            while description and pdf.get_string_width(description + "...") > columns[0] - 2:
                description = description[:-1]
            description += "..."
        pdf.row(
            [
                (description, columns[0], "L"),
                (str(item.quantity), columns[1], "R"),
                (_dollars(item.unit_amount_cents), columns[2], "R"),
                (_dollars(item.amount_cents), columns[3], "R"),
            ]
        )
    pdf.ln(2)
    label_width = columns[0] + columns[1] + columns[2]
    for label, cents, bold in (
        ("Subtotal", document.subtotal_cents, False),
        ("Tax", document.tax_cents, False),
        ("Total", document.total_cents, True),
    ):
        pdf.set_font(pdf.body_font, "B" if bold else "", 10)
        pdf.cell(label_width, 7, label, align="R")
        pdf.cell(columns[3], 7, _dollars(cents), align="R", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(6)
    if document.status is InvoiceStatus.PAID:
        note = "Paid in full. Thank you."
    elif document.status is InvoiceStatus.PAYMENT_FAILED:
        note = "The payment failed: " + (document.failure_message or "please update your card.")
    elif document.draft:
        note = "A preview of this month's invoiced usage so far; amounts change until month end."
    else:
        note = "Due on receipt; charged to the default payment method on file."
    pdf.line_text(note, size=9)
    if document.seller.email:
        pdf.line_text(f"Questions about this invoice: {document.seller.email}", size=9)
    return bytes(pdf.output())
