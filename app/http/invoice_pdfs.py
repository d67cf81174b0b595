"""HTTP endpoints for invoice PDFs, reached through signed links (see links.py)."""

from __future__ import annotations

import uuid

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from app.config import Settings
from app.invoices import documents, links, pdf
from app.invoices.documents import InvoiceDocument
from app.kit.ids import parse_uuid
from app.teams.models import Membership

_INVALID = "This link is invalid or has expired."


def _member(request: Request) -> str | None:
    """The member a link was made for (signed with it), None for an operator's link."""
    return request.query_params.get("member") or None


def _signed(request: Request, target: str) -> bool:
    settings: Settings = request.app.state.settings
    query = request.query_params
    return links.verify(settings, target, query.get("expires"), query.get("signature"))


async def _still_member(request: Request, team_id: uuid.UUID) -> bool:
    """A member's link works while they belong to the team: access ends when they leave."""
    member = _member(request)
    if member is None:
        return True
    user_id = parse_uuid(member)
    return user_id is not None and await Membership.exists(team_id=team_id, user_id=user_id)


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
    raw_team = request.query_params.get("team", "")
    if not _signed(request, links.invoice_target(raw_team, raw_id, _member(request))):
        return PlainTextResponse(_INVALID, status_code=403)
    invoice_id, team_id = parse_uuid(raw_id), parse_uuid(raw_team)
    document = None
    if invoice_id is not None and team_id is not None:
        document = await documents.invoice_document(team_id, invoice_id)
    if document is not None and not await _still_member(request, document.team_id):
        return PlainTextResponse(_INVALID, status_code=403)
    return await _pdf_response(document)


async def upcoming_invoice_pdf(request: Request) -> Response:
    """The PDF preview of a team's invoice for this month so far."""
    raw_id = request.path_params["team_id"]
    if not _signed(request, links.upcoming_target(raw_id, _member(request))):
        return PlainTextResponse(_INVALID, status_code=403)
    team_id = parse_uuid(raw_id)
    if team_id is None or not await _still_member(request, team_id):
        return PlainTextResponse(_INVALID, status_code=403)
    document = await documents.upcoming_invoice(team_id) if team_id else None
    return await _pdf_response(document)


ROUTES = [
    Route("/invoices/{invoice_id}/pdf", invoice_pdf, methods=["GET"]),
    Route("/teams/{team_id}/upcoming-invoice/pdf", upcoming_invoice_pdf, methods=["GET"]),
]
