"""Stripe's webhook events as the service reads them: verified elsewhere, parsed here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Event:
    id: str
    type: str
    object: dict[str, Any]
    payload: dict[str, Any]


class MalformedEvent(ValueError):
    pass


def parse_event(payload: dict[str, Any]) -> Event:
    event_id, event_type = payload.get("id"), payload.get("type")
    data = payload.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    if not isinstance(event_id, str) or not event_id or len(event_id) > 255:
        raise MalformedEvent("event without an id")
    if not isinstance(event_type, str) or not event_type or len(event_type) > 100:
        raise MalformedEvent("event without a type")
    if not isinstance(obj, dict):
        raise MalformedEvent("event without data.object")
    return Event(event_id, event_type, obj, payload)
