"""Which team a Stripe id belongs to (`stripe_objects`): Stripe names its customers,
payment methods and payment intents, never our team, and every row carrying one of
those ids is keyed by team. Anything that starts from a Stripe id reads the team here
first, then the row by (team_id, ...) (docs/distribution-keys-money.md)."""

from __future__ import annotations

import uuid

from tortoise.backends.base.client import BaseDBAsyncClient

from app.kit.errors import DomainError, ErrorCode
from app.kit.ids import parse_uuid
from app.payments.models import StripeObject, StripeObjectKind


async def remember(
    conn: BaseDBAsyncClient, stripe_id: str, kind: StripeObjectKind, team_id: uuid.UUID
) -> None:
    """Records `stripe_id` as the team's, in the caller's transaction (the one writing the
    row that carries it). Recording it again for the same team changes nothing; an id
    already recorded for another team is refused (it can belong to one team only)."""
    found = await StripeObject.filter(stripe_id=stripe_id).using_db(conn).first()
    if found is None:
        await StripeObject.create(stripe_id=stripe_id, kind=kind, team_id=team_id, using_db=conn)
        return
    if found.team_id != team_id or found.kind is not kind:
        raise DomainError(ErrorCode.INVALID_INPUT, "This Stripe object belongs to another team.")


async def team_of(
    stripe_id: str | None, kind: StripeObjectKind, conn: BaseDBAsyncClient | None = None
) -> uuid.UUID | None:
    """The team `stripe_id` was recorded for (as `kind`), or None for an unknown id."""
    if not stripe_id:
        return None
    query = StripeObject.filter(stripe_id=stripe_id, kind=kind)
    found = await (query.using_db(conn) if conn is not None else query).first()
    return parse_uuid(found.team_id) if found is not None else None
