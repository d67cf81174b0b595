"""Webhook endpoints (operators): create, delete, list; their delivery log; replay."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from tortoise.expressions import Q

from app.events import outbox
from app.kit import clock
from app.kit.errors import DomainError, ErrorCode
from app.kit.ids import parse_uuid
from app.kit.pagination import decode_time_cursor, encode_time_cursor
from app.notifications import webhooks
from app.notifications.events import WEBHOOK_EVENTS
from app.notifications.models import Channel, Delivery, DeliveryStatus, WebhookEndpoint

MAX_ENDPOINTS = 50


@dataclass(frozen=True, slots=True)
class Created:
    endpoint: WebhookEndpoint
    secret: str


def check_events(events: list[str]) -> list[str]:
    unknown = [e for e in events if e not in WEBHOOK_EVENTS]
    if not events or unknown:
        known = ", ".join(WEBHOOK_EVENTS)
        raise DomainError(
            ErrorCode.INVALID_INPUT,
            f"Choose one or more of: {known}."[:500],
            "events",
        )
    return list(dict.fromkeys(events))


async def create(url: str, events: list[str]) -> Created:
    checked_url = webhooks.check_url(url)
    checked = check_events(events)
    if await WebhookEndpoint.filter(deleted_at=None).count() >= MAX_ENDPOINTS:
        raise DomainError(
            ErrorCode.INVALID_INPUT, f"At most {MAX_ENDPOINTS} webhook endpoints.", "url"
        )
    secret = webhooks.new_secret()
    endpoint = await WebhookEndpoint.create(
        id=uuid.uuid4(), url=checked_url, events=checked, secret=secret, created_at=clock.now()
    )
    return Created(endpoint, secret)


async def _endpoint(endpoint_id: object) -> WebhookEndpoint:
    parsed = parse_uuid(endpoint_id)
    endpoint = (
        None if parsed is None else await WebhookEndpoint.get_or_none(id=parsed, deleted_at=None)
    )
    if endpoint is None:
        raise DomainError(ErrorCode.NOT_FOUND, "No such webhook endpoint.", "endpointId")
    return endpoint


async def delete(endpoint_id: object) -> WebhookEndpoint:
    """No new deliveries; pending ones are dropped when their turn comes."""
    endpoint = await _endpoint(endpoint_id)
    endpoint.deleted_at = clock.now()
    await endpoint.save(update_fields=["deleted_at"])
    return endpoint


async def listed() -> list[WebhookEndpoint]:
    return await WebhookEndpoint.filter(deleted_at=None).order_by("created_at", "id")


async def deliveries(
    endpoint_id: object, first: int, after: str | None
) -> tuple[list[Delivery], bool]:
    """Newest first, with their events; (page, whether more follow). A deleted endpoint's
    log stays readable; an unknown id has none."""
    parsed = parse_uuid(endpoint_id)
    if parsed is None:
        return [], False
    query = Delivery.filter(endpoint_id=parsed, channel=Channel.WEBHOOK)
    if after:
        created, row_id = decode_time_cursor(after)
        query = query.filter(Q(created_at__lt=created) | Q(created_at=created, id__lt=row_id))
    rows = await query.order_by("-created_at", "-id").limit(first + 1).prefetch_related("event")
    return rows[:first], len(rows) > first


def cursor(delivery: Delivery) -> str:
    return encode_time_cursor(delivery.created_at, delivery.id)


async def replay(delivery_id: object) -> Delivery:
    """Sends the delivery's event again, at once (same event id: receivers deduplicate)."""
    parsed = parse_uuid(delivery_id)
    delivery = (
        None if parsed is None else await Delivery.get_or_none(id=parsed, channel=Channel.WEBHOOK)
    )
    if delivery is None:
        raise DomainError(ErrorCode.NOT_FOUND, "No such webhook delivery.", "deliveryId")
    delivery.status = DeliveryStatus.PENDING
    delivery.next_attempt_at = clock.now()
    await delivery.save(update_fields=["status", "next_attempt_at"])
    await delivery.fetch_related("event")
    outbox.wake()
    return delivery
