"""What each outbox event says by email: recipients, subject, text and HTML, attachments."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import Any

import jinja2
from starlette.concurrency import run_in_threadpool

from app.events.outbox import OutboxEvent, event_id
from app.invoices import documents, pdf
from app.kit.ids import parse_uuid
from app.notifications import addresses
from app.notifications.events import INVITATION, TEAM_EMAILS
from app.notifications.models import NotificationSettings
from app.teams.models import Membership, Role, Team

_templates = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default=False),
    undefined=jinja2.ChainableUndefined,
    keep_trailing_newline=True,
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]+")

ALERT_SUBJECTS = {
    "credits.low": "Credits are running low",
    "credits.exhausted": "Credits are used up",
    "invoiced_limit.reached": "Invoiced spending limit threshold reached",
}
ALERT_KIND_SUBJECTS = {
    "PAYMENT_FAILED": "A payment failed",
    "AUTO_TOP_UP_FAILED": "Auto top-up failed",
}


def is_emailed(event: OutboxEvent) -> bool:
    """Whether the event has an email at all (a purchase invoice's is its receipt)."""
    if event.type == "invoice.issued":
        return event.data.get("kind") == "MONTHLY_USAGE"
    return event.type in TEAM_EMAILS or event.type == INVITATION


async def recipients(event: OutboxEvent) -> list[str]:
    """The team's admins and its notification emails; an invitation's invitee."""
    if event.type == INVITATION:
        email = str(event.data.get("email", ""))
        return [email] if addresses.is_sendable(email) else []
    if event.team_id is None:
        return []
    admins = await Membership.filter(team_id=event.team_id, role=Role.ADMIN).values_list(
        "user__email", flat=True
    )
    settings = await NotificationSettings.get_or_none(team_id=event.team_id)
    extra = settings.emails if settings is not None else []
    found = [str(a).strip().lower() for a in [*admins, *extra]]
    return [a for a in dict.fromkeys(found) if addresses.is_sendable(a)]


@dataclass(frozen=True, slots=True)
class Rendered:
    subject: str
    template: str
    context: dict[str, Any]
    attachment: tuple[str, bytes] | None = None


def _header(text: str) -> str:
    """Header-safe: no line breaks or control characters (no header injection)."""
    return _CONTROL.sub(" ", text).strip()[:200]


async def _team_name(team_id: uuid.UUID | None) -> str:
    if team_id is None:
        return "your team"
    team = await Team.get_or_none(id=team_id)
    return team.name if team is not None else "your team"


async def _invoice_pdf(team_id: object, invoice_id: object) -> tuple[str, bytes] | None:
    team, ident = parse_uuid(team_id), parse_uuid(invoice_id)
    if team is None or ident is None:
        return None
    document = await documents.invoice_document(team, ident)
    if document is None:
        return None
    body = await run_in_threadpool(pdf.render, document)
    return f"{document.number}.pdf", body


async def render(event: OutboxEvent, base_url: str) -> Rendered | None:
    """None when the event (no longer) makes an email (e.g. its invoice is gone)."""
    data = event.data
    team_name = await _team_name(event.team_id)
    context: dict[str, Any] = {**data, "team_name": team_name, "console_url": f"{base_url}/"}
    if event.type == INVITATION:
        context.update(
            invitation_id=data.get("invitationId"),
            invited_by=data.get("invitedBy"),
            role=str(data.get("role", "MEMBER")).lower(),
            accept_url=f"{base_url}/?invitation={data.get('invitationId')}",
        )
        return Rendered(f"You are invited to {team_name} on Creditline", "invitation", context)
    if event.type == "purchase.succeeded":
        attachment = await _invoice_pdf(event.team_id, data.get("invoiceId"))
        if attachment is None:
            return None
        context.update(purchase_id=data.get("purchaseId"), number=attachment[0][:-4])
        return Rendered(
            f"Receipt: ${data.get('amount')} of credits", "receipt", context, attachment
        )
    if event.type == "invoice.issued":
        attachment = await _invoice_pdf(event.team_id, data.get("invoiceId"))
        if attachment is None:
            return None
        cents = int(data.get("totalCents") or 0)
        context.update(total=documents.money_text(cents), paid=data.get("status") == "PAID")
        return Rendered(
            f"Invoice {data.get('number')} for {data.get('period')}", "invoice", context, attachment
        )
    kind = str(data.get("kind", ""))
    subject = ALERT_SUBJECTS.get(event.type) or ALERT_KIND_SUBJECTS.get(kind, "Billing alert")
    context.update(subject=subject)
    return Rendered(subject, "alert", context)


def message(rendered: Rendered, event: OutboxEvent, sender: str, recipient: str) -> EmailMessage:
    """The MIME message: text and HTML alternatives, the PDF attached when there is one."""
    mail = EmailMessage()
    mail["Subject"] = _header(rendered.subject)
    mail["From"] = sender
    mail["To"] = recipient
    mail["Message-ID"] = make_msgid(idstring=event_id(event.id), domain="creditline")
    # Receivers (and the tests) can tell which event a message is for.
    mail["X-Creditline-Event"] = f"{event_id(event.id)} {event.type}"
    context = {**rendered.context, "recipient": recipient}
    mail.set_content(_templates.get_template(f"{rendered.template}.txt").render(context))
    html = _templates.get_template(f"{rendered.template}.html").render(context)
    mail.add_alternative(html, subtype="html")
    if rendered.attachment is not None:
        name, body = rendered.attachment
        mail.add_attachment(body, maintype="application", subtype="pdf", filename=name)
    return mail
