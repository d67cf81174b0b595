"""HTTP endpoints for invoice PDFs, reached through signed links (see links.py)."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from app.config import Settings
from app.invoices import documents, links, pdf
from app.invoices.documents import InvoiceDocument
from app.kit.ids import parse_uuid


def _signed(request: Request, target: str) -> bool:
    settings: Settings = request.app.state.settings
    query = request.query_params
    return links.verify(settings, target, query.get("expires"), query.get("signature"))


async def _pdf_response(document: InvoiceDocument | None) -> Response:
    if document is None:
        return PlainTextResponse("Not found.", status_code=404)
    body = await run_in_threadpool(pdf.render, document)
    return Response(
        body,
        media_type="application/pdf",
        headers={
            "Content-Disposition": f'inline; filename="{document.number}.pdf"',
            "Cache-Control": "private, no-store",
        },
    )


async def invoice_pdf(request: Request) -> Response:
    """The PDF of an issued invoice; 403 unless the link is signed and unexpired."""
    raw_id = request.path_params["invoice_id"]
    if not _signed(request, links.invoice_target(raw_id)):
        return PlainTextResponse("This link is invalid or has expired.", status_code=403)
    invoice_id = parse_uuid(raw_id)
    document = await documents.invoice_document(invoice_id) if invoice_id else None
    return await _pdf_response(document)


async def upcoming_invoice_pdf(request: Request) -> Response:
    """The PDF preview of a team's invoice for this month so far."""
    raw_id = request.path_params["team_id"]
    if not _signed(request, links.upcoming_target(raw_id)):
        return PlainTextResponse("This link is invalid or has expired.", status_code=403)
    team_id = parse_uuid(raw_id)
    document = await documents.upcoming_invoice(team_id) if team_id else None
    return await _pdf_response(document)


ROUTES = [
    Route("/invoices/{invoice_id}/pdf", invoice_pdf, methods=["GET"]),
    Route("/teams/{team_id}/upcoming-invoice/pdf", upcoming_invoice_pdf, methods=["GET"]),
]
