"""Each team's Stripe customer, created on first need."""

from __future__ import annotations

import uuid

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from app.kit import clock
from app.kit.errors import NotFound
from app.payments import stripe_objects
from app.payments.gateway import domain_error, gateway
from app.payments.models import StripeCustomer, StripeObjectKind
from app.payments.stripe import PaymentGatewayError
from app.teams.models import Membership, Role, Team


async def ensure_customer(team_id: uuid.UUID) -> str:
    """The team's Stripe customer id, created on first need (one per team)."""
    row = await StripeCustomer.get_or_none(team_id=team_id)
    if row is not None:
        return row.stripe_id
    team = await Team.get_or_none(id=team_id)
    if team is None:
        raise NotFound()
    admin = (
        await Membership.filter(team_id=team_id, role=Role.ADMIN)
        .order_by("created_at")
        .prefetch_related("user")
        .first()
    )
    try:
        stripe_id = await gateway().create_customer(
            str(team_id),
            team.name,
            admin.user.email if admin else None,
            idempotency_key=f"team:{team_id}:customer",
        )
    except PaymentGatewayError as error:
        raise domain_error(error) from error
    try:
        async with in_transaction() as conn:
            # With its team in stripe_objects: webhooks name the customer, not the team.
            await StripeCustomer.create(
                team_id=team_id, stripe_id=stripe_id, created_at=clock.now(), using_db=conn
            )
            await stripe_objects.remember(conn, stripe_id, StripeObjectKind.CUSTOMER, team_id)
    except IntegrityError:
        # A concurrent first need won; Stripe's idempotency key made it the same customer
        # (an emulator that ignores keys leaves an unused one behind).
        return (await StripeCustomer.get(team_id=team_id)).stripe_id
    return stripe_id


async def customer_of(team_id: uuid.UUID) -> str | None:
    row = await StripeCustomer.get_or_none(team_id=team_id)
    return row.stripe_id if row else None
