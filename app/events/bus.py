"""Change notifications: services announce after commit, subscribers listen per team.

`broker.publish(channel, message)` and `broker.subscribe(channel)` (a queue holding the
newest message) work for any channel; the lifespan switches `broker` to Redis when
BROKER_URL says so. Credits notices carry the commit time so latency can be measured.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable

import structlog

from app.events.broker import RESYNC, Broker

log = structlog.get_logger(__name__)

broker = Broker()

__all__ = [
    "RESYNC",
    "broker",
    "committed_at",
    "credits_changed",
    "credits_changed_many",
    "credits_channel",
    "members_changed",
    "members_channel",
]


def credits_channel(team_id: uuid.UUID | str) -> str:
    return f"credits:{team_id}"


def members_channel(team_id: uuid.UUID) -> str:
    return f"members:{team_id}"


def _notice(team: uuid.UUID | str, committed_at: float | None = None) -> str:
    # Wall-clock time (not app.kit.clock, which tests freeze): other processes compare it.
    # Formatted by hand, one per changed team on the usage path: the same text as
    # json.dumps (a UUID needs no escaping, a float is written as its repr) at a
    # fraction of the cost.
    at = time.time() if committed_at is None else committed_at
    return f'{{"team": "{team}", "committedAt": {at!r}}}'


def committed_at(message: str) -> float | None:
    """The commit time a notice carries (Unix seconds), None for anything else."""
    if not message.startswith("{"):
        return None
    try:
        value = json.loads(message).get("committedAt")
    except (ValueError, AttributeError):
        return None
    return float(value) if isinstance(value, int | float) else None


async def _announce(channel: str, team_id: uuid.UUID) -> None:
    try:
        await broker.publish(channel, _notice(team_id))
    except Exception:  # the change is committed; a lost notice must not fail it
        log.warning("bus.publish_failed", channel=channel, exc_info=True)


async def credits_changed(team_id: uuid.UUID) -> None:
    """Announce that a team's credits changed; call only after the change committed."""
    await _announce(credits_channel(team_id), team_id)


async def credits_changed_many(team_ids: Iterable[uuid.UUID]) -> None:
    """`credits_changed` for several teams, in one round trip to the broker."""
    now = time.time()  # they committed together
    messages = []
    for team_id in team_ids:
        team = str(team_id)  # formatting a UUID is most of the cost: once per team
        messages.append((credits_channel(team), _notice(team, now)))
    try:
        await broker.publish_many(messages)
    except Exception:  # the changes are committed; lost notices must not fail them
        log.warning("bus.publish_failed", channels=len(messages), exc_info=True)


async def members_changed(team_id: uuid.UUID) -> None:
    """Announce that a team lost a member; open subscriptions re-check access at once."""
    await _announce(members_channel(team_id), team_id)
