"""What every mutation payload shares: domain errors as UserErrors, the team's credits."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import ParamSpec, TypeVar

import strawberry

from app.credits import service as credits
from app.graphql import inputs, throttle
from app.graphql.errors import UserError
from app.graphql.types import Credits
from app.kit.errors import DomainError

P = ParamSpec("P")
R = TypeVar("R")


def payload_errors(
    payload: type[R], *, per_item_text: bool = False
) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Awaitable[R]]]:
    """Turns a DomainError raised by the resolver into `payload(errors=[...])`.

    Text the database refuses in the arguments answers INVALID_INPUT on its field before
    the resolver runs (`inputs.TextGuard` leaves these arguments to it); with
    `per_item_text` the resolver checks each item itself, so one bad item of a batch
    fails alone.
    """

    def wrap(resolver: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        @functools.wraps(resolver)
        async def run(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                refused = None if per_item_text else inputs.refused_argument(kwargs)
                if refused is not None:
                    raise refused
                # Before the resolver: a rate-limited mutation does nothing at all.
                await throttle.check(kwargs.get("info"), kwargs.get("input"))
                return await resolver(*args, **kwargs)
            except DomainError as error:
                return payload(errors=[UserError.of(error)])  # type: ignore[call-arg]

        inputs.checks_own_text(run)
        return run

    return wrap


def utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@strawberry.type
class CreditsPayloadMixin:
    team_id: strawberry.Private[uuid.UUID | None] = None

    @strawberry.field
    async def credits(self) -> Credits | None:
        if self.team_id is None:
            return None
        return Credits(view=await credits.credits_view(self.team_id))
