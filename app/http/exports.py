"""CSV exports of usage records and ledger entries, reached through signed links
(`Team.exportUrl`, invoices/links.py). Rows are streamed a keyset page at a time: a
year of a busy team never sits in memory, and the first bytes leave at once."""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from app.billing import statement
from app.config import Settings
from app.credits import history
from app.invoices import links
from app.kit.ids import parse_uuid
from app.kit.money import format_units
from app.teams.models import Membership

_INVALID = "This link is invalid or has expired."
USAGE_HEADER = (
    "id",
    "occurred_at",
    "idempotency_key",
    "description",
    "amount",
    "from_free",
    "from_promotional",
    "from_prepaid",
    "invoiced",
    "dimensions",
)
LEDGER_HEADER = ("id", "created_at", "kind", "amount", "balance_after", "description")
_KINDS = ("usage", "ledger")


def _text(value: str | None) -> str:
    return "" if value is None else history.csv_cell(value)


def _time(value: datetime) -> str:
    return value.astimezone(UTC).isoformat()


def _lines(rows: Iterable[Iterable[str]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerows(rows)
    return out.getvalue()


async def _usage_csv(team_id: uuid.UUID, start: datetime, end: datetime) -> AsyncIterator[str]:
    yield _lines([USAGE_HEADER])
    async for page in history.stream_records(team_id, start, end):
        yield _lines(
            (
                str(r.id),
                _time(r.occurred_at),
                _text(r.idempotency_key),
                _text(r.description),
                format_units(r.amount),
                format_units(r.from_free),
                format_units(r.from_promotional),
                format_units(r.from_prepaid),
                format_units(r.invoiced),
                # Compact JSON: a cell starting with "{" is never read as a formula.
                json.dumps(r.dimensions, ensure_ascii=False, separators=(",", ":"))
                if r.dimensions
                else "",
            )
            for r in page
        )


async def _ledger_csv(team_id: uuid.UUID, start: datetime, end: datetime) -> AsyncIterator[str]:
    yield _lines([LEDGER_HEADER])
    async for page in statement.stream_entries(team_id, start, end):
        yield _lines(
            (
                str(e.id),
                _time(e.created_at),
                e.kind.value,
                format_units(e.amount),  # signed: numbers stay numbers
                format_units(e.balance_after),
                _text(e.description),
            )
            for e in page
        )


def _instant(raw: str | None) -> datetime | None:
    if raw is None or not raw.isdigit() or len(raw) > 12:
        return None
    return datetime.fromtimestamp(int(raw), UTC)


async def export_csv(request: Request) -> Response:
    """The CSV behind a signed export link; 403 unless signed, unexpired and, for a
    member's link, while they still belong to the team."""
    raw_team, kind = request.path_params["team_id"], request.path_params["kind"]
    query = request.query_params
    raw_from, raw_to = query.get("from"), query.get("to")
    member = query.get("member") or None
    settings: Settings = request.app.state.settings
    target = links.export_target(raw_team, kind, raw_from or "", raw_to or "", member)
    if kind not in _KINDS or not links.verify(
        settings, target, query.get("expires"), query.get("signature")
    ):
        return PlainTextResponse(_INVALID, status_code=403)
    team_id = parse_uuid(raw_team)
    start, end = _instant(raw_from), _instant(raw_to)
    if team_id is None or start is None or end is None:
        return PlainTextResponse(_INVALID, status_code=403)
    if member is not None:
        user_id = parse_uuid(member)
        if user_id is None or not await Membership.exists(team_id=team_id, user_id=user_id):
            return PlainTextResponse(_INVALID, status_code=403)
    rows = _usage_csv(team_id, start, end) if kind == "usage" else _ledger_csv(team_id, start, end)
    name = f"{kind}-{raw_from}-{raw_to}.csv"
    return StreamingResponse(
        rows,
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "Cache-Control": "private, no-store",
        },
    )


ROUTES = [Route("/teams/{team_id}/exports/{kind}.csv", export_csv, methods=["GET"])]
