"""Notifications in GraphQL: a team's settings (admins), webhook endpoints (operators).

Thin: the rules are in `app.notifications` (docs/notifications.md).
"""

from __future__ import annotations

import uuid
from datetime import datetime

import strawberry

from app.events.outbox import event_id
from app.graphql.context import Info
from app.graphql.errors import UserError
from app.graphql.payloads import payload_errors
from app.graphql.scalars import Decimal
from app.graphql.types import PageInfo
from app.kit.errors import Forbidden
from app.kit.money import format_units, parse_field
from app.kit.pagination import page_size
from app.notifications import endpoints
from app.notifications import settings as notification_settings
from app.notifications.models import Delivery, DeliveryStatus, WebhookEndpoint
from app.teams import service as teams
from app.teams.models import Role

strawberry.enum(DeliveryStatus, name="WebhookDeliveryStatus")


@strawberry.type(description="Who is emailed and when a team's alerts fire.")
class NotificationSettings:
    emails: list[str] = strawberry.field(
        description="emailed besides the team's admins (billing alerts, receipts, invoices)"
    )
    invoiced_limit_thresholds: list[int] = strawberry.field(
        description="percent of the current invoiced limit; raising the limit re-arms them"
    )
    low_balance_threshold: Decimal | None = strawberry.field(
        description="CREDITS_LOW when credits fall below it (null: the auto top-up threshold)"
    )

    @classmethod
    def of(cls, view: notification_settings.SettingsView) -> NotificationSettings:
        low = view.low_balance_threshold
        return cls(
            emails=view.emails,
            invoiced_limit_thresholds=view.invoiced_limit_thresholds,
            low_balance_threshold=Decimal(format_units(low)) if low is not None else None,
        )


async def team_notification_settings(
    info: Info, team_id: uuid.UUID, viewer_role: Role | None
) -> NotificationSettings:
    """`Team.notificationSettings`: admins and operators (it lists people's addresses)."""
    if viewer_role is not Role.ADMIN and not (await info.context.viewer()).is_operator:
        raise Forbidden()
    return NotificationSettings.of(await notification_settings.get(team_id))


@strawberry.input
class UpdateNotificationSettingsInput:
    team_id: strawberry.ID
    emails: list[str] | None = None
    invoiced_limit_thresholds: list[int] | None = None
    low_balance_threshold: Decimal | None = strawberry.field(
        default=strawberry.UNSET, description="null clears it"
    )


@strawberry.type
class UpdateNotificationSettingsPayload:
    notification_settings: NotificationSettings | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type(
    name="WebhookEndpoint", description="An operator-managed receiver of the platform's events."
)
class WebhookEndpointType:
    id: strawberry.ID
    url: str
    events: list[str]
    created_at: datetime

    @classmethod
    def of(cls, endpoint: WebhookEndpoint) -> WebhookEndpointType:
        return cls(
            id=strawberry.ID(str(endpoint.id)),
            url=endpoint.url,
            events=list(endpoint.events),
            created_at=endpoint.created_at,
        )


@strawberry.type(name="WebhookDelivery", description="One event sent (or to send) to an endpoint.")
class WebhookDeliveryType:
    id: strawberry.ID
    event_id: str = strawberry.field(description="the body's `id`: receivers deduplicate by it")
    event_type: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None

    @classmethod
    def of(cls, delivery: Delivery) -> WebhookDeliveryType:
        pending = delivery.status is DeliveryStatus.PENDING
        return cls(
            id=strawberry.ID(str(delivery.id)),
            event_id=event_id(delivery.event_id),
            event_type=delivery.event.type,
            status=delivery.status,
            attempts=delivery.attempts,
            next_attempt_at=delivery.next_attempt_at if pending else None,
            last_status_code=delivery.last_status_code,
            last_error=delivery.last_error,
            created_at=delivery.created_at,
            delivered_at=delivery.delivered_at,
        )


@strawberry.type
class WebhookDeliveryEdge:
    node: WebhookDeliveryType
    cursor: str


@strawberry.type
class WebhookDeliveryConnection:
    edges: list[WebhookDeliveryEdge]
    page_info: PageInfo


@strawberry.input
class CreateWebhookEndpointInput:
    url: str
    events: list[str] = strawberry.field(description='e.g. ["team.blocked", "team.unblocked"]')


@strawberry.type
class CreateWebhookEndpointPayload:
    endpoint: WebhookEndpointType | None = None
    secret: str | None = strawberry.field(
        default=None, description="shown once: verify `Creditline-Signature` with it"
    )
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class DeleteWebhookEndpointInput:
    endpoint_id: strawberry.ID


@strawberry.type
class DeleteWebhookEndpointPayload:
    endpoint: WebhookEndpointType | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class ReplayWebhookDeliveryInput:
    delivery_id: strawberry.ID


@strawberry.type
class ReplayWebhookDeliveryPayload:
    delivery: WebhookDeliveryType | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class NotificationsMutation:
    @strawberry.mutation(description="Admin. Omitted fields keep their values.")
    @payload_errors(UpdateNotificationSettingsPayload)
    async def update_notification_settings(
        self, info: Info, input: UpdateNotificationSettingsInput
    ) -> UpdateNotificationSettingsPayload:
        access = await teams.team_access(
            await info.context.team_caller(), input.team_id, admin=True
        )
        low: object = notification_settings.KEEP
        if input.low_balance_threshold is None:
            low = None
        elif input.low_balance_threshold is not strawberry.UNSET:
            low = parse_field(input.low_balance_threshold, "lowBalanceThreshold")
        view = await notification_settings.update(
            access.team.id,
            emails=input.emails,
            thresholds=input.invoiced_limit_thresholds,
            low_balance=low,
        )
        return UpdateNotificationSettingsPayload(
            notification_settings=NotificationSettings.of(view)
        )

    @strawberry.mutation(description="Operator only. The signing secret is in the payload, once.")
    @payload_errors(CreateWebhookEndpointPayload)
    async def create_webhook_endpoint(
        self, info: Info, input: CreateWebhookEndpointInput
    ) -> CreateWebhookEndpointPayload:
        await info.context.operator()
        created = await endpoints.create(input.url, input.events)
        return CreateWebhookEndpointPayload(
            endpoint=WebhookEndpointType.of(created.endpoint), secret=created.secret
        )

    @strawberry.mutation(description="Operator only. Nothing more is sent to it.")
    @payload_errors(DeleteWebhookEndpointPayload)
    async def delete_webhook_endpoint(
        self, info: Info, input: DeleteWebhookEndpointInput
    ) -> DeleteWebhookEndpointPayload:
        await info.context.operator()
        endpoint = await endpoints.delete(input.endpoint_id)
        return DeleteWebhookEndpointPayload(endpoint=WebhookEndpointType.of(endpoint))

    @strawberry.mutation(description="Operator only. Sends the delivery's event again, same id.")
    @payload_errors(ReplayWebhookDeliveryPayload)
    async def replay_webhook_delivery(
        self, info: Info, input: ReplayWebhookDeliveryInput
    ) -> ReplayWebhookDeliveryPayload:
        await info.context.operator()
        delivery = await endpoints.replay(input.delivery_id)
        return ReplayWebhookDeliveryPayload(delivery=WebhookDeliveryType.of(delivery))


async def webhook_endpoints(info: Info) -> list[WebhookEndpointType]:
    await info.context.operator()
    return [WebhookEndpointType.of(e) for e in await endpoints.listed()]


async def webhook_deliveries(
    info: Info, endpoint_id: strawberry.ID, first: int | None, after: str | None
) -> WebhookDeliveryConnection:
    await info.context.operator()
    rows, more = await endpoints.deliveries(endpoint_id, page_size(first), after)
    edges = [
        WebhookDeliveryEdge(node=WebhookDeliveryType.of(d), cursor=endpoints.cursor(d))
        for d in rows
    ]
    return WebhookDeliveryConnection(
        edges=edges,
        page_info=PageInfo(has_next_page=more, end_cursor=edges[-1].cursor if edges else None),
    )
