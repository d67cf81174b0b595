"""Credit programs over GraphQL: promo codes, auto top-up, billing alerts.

`ProgramsMutation` is merged into Mutation; Team.autoTopUp / Team.alerts and the
`billingAlerts` subscription call the functions at the bottom.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable
from datetime import datetime
from typing import Any

import strawberry

from app.billing import auto_top_up as billing_auto_top_up
from app.credits import alerts as alert_service
from app.credits import auto_top_up, promo
from app.credits.models import AlertKind as DomainAlertKind
from app.credits.models import BillingAlert as BillingAlertModel
from app.credits.models import PromoCode as PromoCodeModel
from app.events import bus
from app.graphql.audit import actor as audit_actor
from app.graphql.context import Info
from app.graphql.errors import UserError
from app.graphql.payloads import CreditsPayloadMixin, payload_errors, utc
from app.graphql.scalars import Decimal
from app.graphql.types import CreditGrant, money
from app.kit.errors import NotFound
from app.kit.money import parse_field
from app.kit.pagination import page_size
from app.teams import service as teams
from app.teams.models import Membership
from app.teams.service import Viewer

strawberry.enum(DomainAlertKind, name="AlertKind")
AlertKind = DomainAlertKind


@strawberry.type
class AutoTopUp:
    enabled: bool
    threshold: Decimal
    amount: Decimal
    monthly_limit: Decimal
    paused_reason: str | None = strawberry.field(
        description="set when a top-up failed; configuring auto top-up again clears it"
    )
    pending: bool = strawberry.field(description="a top-up is being charged")

    @classmethod
    def of(cls, view: auto_top_up.AutoTopUpView) -> AutoTopUp:
        return cls(
            enabled=view.enabled,
            threshold=money(view.threshold),
            amount=money(view.amount),
            monthly_limit=money(view.monthly_limit),
            paused_reason=view.paused_reason,
            pending=view.pending,
        )


@strawberry.type
class BillingAlert:
    id: strawberry.ID
    kind: AlertKind
    message: str
    created_at: datetime

    @classmethod
    def of(cls, alert: BillingAlertModel) -> BillingAlert:
        return cls(
            id=strawberry.ID(str(alert.id)),
            kind=alert.kind,
            message=alert.message,
            created_at=alert.created_at,
        )


@strawberry.type
class PromoCode:
    id: strawberry.ID
    code: str = strawberry.field(description="trimmed and upper-cased; redeemed in any case")
    amount: Decimal
    expires_at: datetime | None
    max_redemptions: int | None
    redemptions: int
    credit_validity_days: int | None = strawberry.field(
        description="the granted credits expire this many days after redemption"
    )
    created_at: datetime

    @classmethod
    def of(cls, code: PromoCodeModel) -> PromoCode:
        return cls(
            id=strawberry.ID(str(code.id)),
            code=code.code,
            amount=money(code.amount),
            expires_at=code.expires_at,
            max_redemptions=code.max_redemptions,
            redemptions=code.redemptions,
            credit_validity_days=code.credit_validity_days,
            created_at=code.created_at,
        )


@strawberry.input
class CreatePromoCodeInput:
    code: str
    amount: Decimal
    expires_at: datetime | None = None
    max_redemptions: int | None = None
    credit_validity_days: int | None = None


@strawberry.type
class CreatePromoCodePayload:
    code: PromoCode | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class RedeemPromoCodeInput:
    team_id: strawberry.ID
    code: str


@strawberry.type
class RedeemPromoCodePayload(CreditsPayloadMixin):
    grant: CreditGrant | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class ConfigureAutoTopUpInput:
    team_id: strawberry.ID
    enabled: bool
    threshold: Decimal
    amount: Decimal
    monthly_limit: Decimal


@strawberry.type
class ConfigureAutoTopUpPayload:
    auto_top_up: AutoTopUp | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class ProgramsMutation:
    @strawberry.mutation(description="Operator only.")
    @payload_errors(CreatePromoCodePayload)
    async def create_promo_code(
        self, info: Info, input: CreatePromoCodeInput
    ) -> CreatePromoCodePayload:
        await info.context.operator()
        amount = parse_field(input.amount, "amount", places=2)
        code = await promo.create_promo_code(
            input.code,
            amount,
            expires_at=utc(input.expires_at),
            max_redemptions=input.max_redemptions,
            credit_validity_days=input.credit_validity_days,
        )
        return CreatePromoCodePayload(code=PromoCode.of(code))

    @strawberry.mutation(
        description="Admin: adds the code's promotional credits, once per team. More than "
        "10 failed attempts in an hour (by the team, or by you on any team) answer "
        "RATE_LIMITED."
    )
    @payload_errors(RedeemPromoCodePayload)
    async def redeem_promo_code(
        self, info: Info, input: RedeemPromoCodeInput
    ) -> RedeemPromoCodePayload:
        caller = await info.context.team_caller()
        access = await teams.team_access(caller, input.team_id, admin=True)
        # Failed guesses count against the person as well as the team (a key: the team).
        user_id = caller.user.id if isinstance(caller, Viewer) else None
        redemption = await promo.redeem_promo_code(access.team.id, input.code, user_id=user_id)
        return RedeemPromoCodePayload(
            grant=CreditGrant.of(redemption.grant), team_id=access.team.id
        )

    @strawberry.mutation(
        description="Admin: charge the default card when usage leaves the credits below "
        "`threshold`; at most 5 top-ups in 24 hours and `monthlyLimit` per calendar month."
    )
    @payload_errors(ConfigureAutoTopUpPayload)
    async def configure_auto_top_up(
        self, info: Info, input: ConfigureAutoTopUpInput
    ) -> ConfigureAutoTopUpPayload:
        access = await teams.team_access(
            await info.context.team_caller(), input.team_id, admin=True
        )
        threshold = parse_field(input.threshold, "threshold", places=2, allow_zero=True)
        amount = parse_field(input.amount, "amount", places=2)
        monthly_limit = parse_field(input.monthly_limit, "monthlyLimit", places=2)
        view = await billing_auto_top_up.configure(
            access.team.id,
            enabled=input.enabled,
            threshold=threshold,
            amount=amount,
            monthly_limit=monthly_limit,
            actor=await audit_actor(info),
        )
        return ConfigureAutoTopUpPayload(auto_top_up=AutoTopUp.of(view))


# --- Team fields and the subscription ----------------------------------------------------------


async def team_auto_top_up(team_id: uuid.UUID) -> AutoTopUp:
    return AutoTopUp.of(await auto_top_up.view(team_id))


async def team_alerts(team_id: uuid.UUID, first: int) -> list[BillingAlert]:
    # Capped like every page: more than 100 is INVALID_INPUT, not silently fewer.
    first = page_size(first)
    return [BillingAlert.of(a) for a in await alert_service.list_alerts(team_id, first)]


# Backstop for a lost members notice: a member's access is re-checked this often anyway.
ALERTS_ACCESS_RECHECK_SECONDS = 30.0


async def billing_alerts_stream(
    team_id: uuid.UUID,
    user_id: uuid.UUID | None,
    still_allowed: Callable[[], Awaitable[bool]] | None = None,
) -> AsyncGenerator[BillingAlert, None]:
    """Each alert as raised; for a member (`user_id`), ends with NOT_FOUND as soon as they
    leave or are removed (the team's members notice), like `creditsUpdated`; for a team
    key, `still_allowed` (as in `balances.credits_stream`) is asked before each alert."""
    alerts = alert_service.alert_stream(team_id)
    if user_id is None:  # an operator reads any team; a team key its own
        async for alert in alerts:
            if still_allowed is not None and not await still_allowed():
                raise NotFound()
            yield BillingAlert.of(alert)
        return
    async with bus.broker.subscribe(bus.members_channel(team_id)) as members:
        pending: asyncio.Task[Any] = asyncio.ensure_future(anext(alerts))
        try:
            while True:
                changed = asyncio.ensure_future(members.get())
                done, _ = await asyncio.wait(
                    {pending, changed},
                    timeout=ALERTS_ACCESS_RECHECK_SECONDS,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if pending not in done:
                    changed.cancel()
                    if not await Membership.exists(team_id=team_id, user_id=user_id):
                        raise NotFound()
                    continue
                changed.cancel()
                if still_allowed is not None and not await still_allowed():
                    raise NotFound()
                yield BillingAlert.of(pending.result())
                pending = asyncio.ensure_future(anext(alerts))
        finally:
            # The alert read must finish unwinding before the generator can be closed.
            pending.cancel()
            with contextlib.suppress(BaseException):
                await pending
            await alerts.aclose()
