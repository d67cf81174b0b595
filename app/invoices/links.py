"""Signed, expiring links to invoice PDFs: HMAC-SHA256 over the target and the expiry.

A link made for a member names them (`member`, inside the signed target): serving it
checks they still belong to the team, so a link stops working when they leave. Links
made for operators (or the service itself) name nobody.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from datetime import timedelta
from urllib.parse import urlencode

from app.config import Settings
from app.kit import clock

LINK_TTL = timedelta(hours=24)
_PURPOSE = b"creditline:invoice-pdf:v1"


def _key(settings: Settings) -> bytes:
    # Derived from the JWT secret, so a link can never double as a token or the reverse.
    return hmac.new(settings.jwt_secret().encode(), _PURPOSE, hashlib.sha256).digest()


def signature(settings: Settings, target: str, expires: int) -> str:
    message = f"{target}\n{expires}".encode()
    return hmac.new(_key(settings), message, hashlib.sha256).hexdigest()


Member = uuid.UUID | str | None


def _for(member: Member) -> str:
    return f":member:{member}" if member else ""


def invoice_target(
    team_id: uuid.UUID | str, invoice_id: uuid.UUID | str, member: Member = None
) -> str:
    """The team is signed with the invoice: the link names the invoice's whole key, so it
    is read by (team_id, id), on one shard."""
    return f"invoice:{team_id}/{invoice_id}{_for(member)}"


def upcoming_target(team_id: uuid.UUID | str, member: Member = None) -> str:
    return f"upcoming:{team_id}{_for(member)}"


def signed_url(
    settings: Settings,
    base: str,
    path: str,
    target: str,
    ttl: timedelta = LINK_TTL,
    member: Member = None,
    team_id: uuid.UUID | str | None = None,
) -> str:
    """`base` is the service's address (`kit.origin.public_base`): PUBLIC_URL or the
    request's own, so the link opens wherever the caller reached the service."""
    expires = int((clock.now() + ttl).timestamp())
    params: dict[str, object] = {"team": str(team_id)} if team_id else {}
    params |= {"member": str(member)} if member else {}
    params |= {"expires": expires, "signature": signature(settings, target, expires)}
    return f"{base.rstrip('/')}{path}?{urlencode(params)}"


def invoice_pdf_url(
    settings: Settings,
    base: str,
    team_id: uuid.UUID | str,
    invoice_id: uuid.UUID | str,
    member: Member = None,
) -> str:
    target = invoice_target(team_id, invoice_id, member)
    path = f"/invoices/{invoice_id}/pdf"
    return signed_url(settings, base, path, target, member=member, team_id=team_id)


def upcoming_pdf_url(
    settings: Settings, base: str, team_id: uuid.UUID | str, member: Member = None
) -> str:
    target = upcoming_target(team_id, member)
    path = f"/teams/{team_id}/upcoming-invoice/pdf"
    return signed_url(settings, base, path, target, member=member)


def verify(settings: Settings, target: str, expires: str | None, sig: str | None) -> bool:
    """True when `sig` signs (target, expires) and `expires` is still in the future."""
    if not expires or not sig or len(expires) > 12 or not expires.isdigit():
        return False
    expected = signature(settings, target, int(expires))
    if not hmac.compare_digest(expected.encode(), sig.encode()):
        return False
    return int(expires) > clock.now().timestamp()


# Exports (app/http/exports.py): the same signer; the range is part of the signed target.
EXPORT_TTL = timedelta(hours=1)


def export_target(
    team_id: uuid.UUID | str, kind: str, start: int | str, end: int | str, member: Member = None
) -> str:
    return f"export:{team_id}:{kind}:{start}:{end}{_for(member)}"


def export_url(
    settings: Settings,
    base: str,
    team_id: uuid.UUID | str,
    kind: str,
    start: int,
    end: int,
    member: Member = None,
) -> str:
    """A signed link to a CSV of the team's `kind` ("usage" or "ledger") in [start, end)
    (Unix seconds); it expires after EXPORT_TTL."""
    target = export_target(team_id, kind, start, end, member)
    path = f"/teams/{team_id}/exports/{kind}.csv?from={start}&to={end}"
    url = signed_url(settings, base, path, target, ttl=EXPORT_TTL, member=member)
    # signed_url appends its own query with "?": join the two.
    head, _, tail = url.rpartition("?")
    return f"{head}&{tail}"
