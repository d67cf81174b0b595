"""`POST /v1/usage` and `POST /v1/usage/batch`: usage events as plain JSON (docs/ingestion.md).

One typed model (`UsageEvent`), decoded by msgspec straight from the body. A batch is
decoded in two steps, the list first with each event kept as raw bytes, then each event
on its own, so a malformed event gets its own error and the others go on. Events go to
the same credits service as the GraphQL mutations.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Annotated, Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app import metrics, tracing
from app.credits import batching
from app.credits import service as credits
from app.credits.store import UsageRow
from app.http.auth import authenticate
from app.http.errors import ApiError, error_body, json_endpoint, json_response
from app.kit.errors import DomainError, ErrorCode
from app.kit.money import format_units

MAX_BATCH_EVENTS = 1000


class UsageEvent(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    """A usage event as the metering gateway sends it; `amount` is a decimal string."""

    team_id: str
    amount: str
    idempotency_key: str
    description: str | None = None
    occurred_at: Annotated[datetime, msgspec.Meta(tz=True)] | None = None
    dimensions: dict[str, str] | None = None


class UsageBatch(msgspec.Struct, forbid_unknown_fields=True):
    events: list[msgspec.Raw]


_event_decoder = msgspec.json.Decoder(UsageEvent)
_batch_decoder = msgspec.json.Decoder(UsageBatch)
# "... - at `$.amount`", "Object missing required field `teamId`": the field named.
_AT_FIELD = re.compile(r"at `\$\.?([A-Za-z]+)")
_NAMED_FIELD = re.compile(r"field `([A-Za-z]+)`")


def _field_of(error: msgspec.ValidationError) -> str | None:
    text = str(error)
    found = _AT_FIELD.search(text) or _NAMED_FIELD.search(text)
    return found.group(1) if found else None


def _invalid(error: msgspec.ValidationError) -> DomainError:
    field = _field_of(error)
    code = ErrorCode.INVALID_AMOUNT if field == "amount" else ErrorCode.INVALID_INPUT
    return DomainError(code, str(error), field)


def _loads(body: bytes) -> Any:
    """JSON that msgspec refused as malformed, read again by the standard library, which
    takes escapes of lone surrogates (`"\\ud800"`): what they are in is then refused
    field by field, like a NUL byte, instead of failing the whole request."""
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        raise ApiError(400, ErrorCode.INVALID_INPUT.value, "The body is not valid JSON.") from None


def _event(value: msgspec.Raw | Any) -> UsageEvent | DomainError:
    """One event, from raw JSON or from what `_loads` read."""
    try:
        if isinstance(value, msgspec.Raw):
            try:
                return _event_decoder.decode(value)
            except msgspec.DecodeError:
                value = _loads(bytes(value))
        return msgspec.convert(value, UsageEvent)
    except msgspec.ValidationError as error:
        return _invalid(error)
    except ApiError as error:
        return DomainError(ErrorCode.INVALID_INPUT, error.message)


def _request(event: UsageEvent) -> credits.UsageRequest | DomainError:
    return credits.usage_request(
        event.team_id,
        event.amount,
        event.idempotency_key,
        description=event.description,
        occurred_at=event.occurred_at,
        dimensions_value=event.dimensions,
    )


def usage_body(record: UsageRow) -> dict[str, Any]:
    """A UsageRecord under its GraphQL field names (amounts as decimal strings)."""
    return {
        "id": str(record.id),
        "teamId": str(record.team_id),
        "idempotencyKey": record.idempotency_key,
        "amount": format_units(record.amount),
        "accepted": True,
        "fromFree": format_units(record.from_free),
        "fromPromotional": format_units(record.from_promotional),
        "fromPrepaid": format_units(record.from_prepaid),
        "invoiced": format_units(record.invoiced),
        "description": record.description,
        "occurredAt": record.occurred_at.isoformat(),
        "dimensions": record.dimensions,
    }


def _outcome(result: credits.UsageResult) -> UsageRow | DomainError:
    if result.not_found:
        return DomainError(ErrorCode.NOT_FOUND, "No such team.", "teamId")
    if result.error is not None:
        return result.error
    assert result.record is not None
    return result.record


async def _body(request: Request) -> bytes:
    body = await request.body()
    if not body:
        raise ApiError(400, ErrorCode.INVALID_INPUT.value, "The body is a JSON object.")
    return body


@json_endpoint
async def record_usage(request: Request) -> Response:
    """One event: 200 with its record, or its refusal's status (errors.STATUS)."""
    with tracing.span("usage.authenticate"):
        await authenticate(request)
    body = await _body(request)
    with tracing.span("usage.parse"):
        try:
            event: UsageEvent | DomainError = _event_decoder.decode(body)
        except msgspec.DecodeError:
            event = _event(_loads(body))
        except msgspec.ValidationError as error:
            event = _invalid(error)
        parsed = event if isinstance(event, DomainError) else _request(event)
    if isinstance(parsed, DomainError):
        outcome: UsageRow | DomainError = parsed
    else:
        # Joins the worker's group commit with concurrent events (the batch wait span).
        outcome = _outcome(await batching.submit(parsed))
    if isinstance(outcome, DomainError):
        metrics.count_usage([outcome.code.value])
        raise ApiError.of(outcome)
    metrics.count_usage([None])
    return json_response({"usage": usage_body(outcome)})


def _batch(body: bytes) -> list[msgspec.Raw] | list[Any]:
    try:
        return _batch_decoder.decode(body).events
    except msgspec.ValidationError as error:
        raise ApiError(400, ErrorCode.INVALID_INPUT.value, str(error), "events") from None
    except msgspec.DecodeError:
        document = _loads(body)
    events = document.get("events") if isinstance(document, dict) else None
    if not isinstance(events, list) or set(document) != {"events"}:
        message = 'The body is {"events": [event, ...]}.'
        raise ApiError(400, ErrorCode.INVALID_INPUT.value, message, "events")
    return events


@json_endpoint
async def record_usage_batch(request: Request) -> Response:
    """1 to 1,000 events, any teams: 200 with one result per event, in input order."""
    with tracing.span("usage.authenticate"):
        await authenticate(request)
    body = await _body(request)
    with tracing.span("usage.parse"):
        events = _batch(body)
        if not 1 <= len(events) <= MAX_BATCH_EVENTS:
            message = f"A batch holds 1 to {MAX_BATCH_EVENTS} events."
            raise ApiError(400, ErrorCode.INVALID_INPUT.value, message, "events")
        parsed: list[credits.UsageRequest | DomainError] = []
        for raw in events:
            event = _event(raw)
            parsed.append(event if isinstance(event, DomainError) else _request(event))
    requests = [p for p in parsed if isinstance(p, credits.UsageRequest)]
    applied = iter(await credits.record_usage(requests)) if requests else iter(())
    results: list[dict[str, Any]] = []
    codes: list[str | None] = []
    for item in parsed:
        outcome = item if isinstance(item, DomainError) else _outcome(next(applied))
        if isinstance(outcome, DomainError):
            results.append(error_body(outcome.code.value, outcome.message, outcome.field))
            codes.append(outcome.code.value)
        else:
            results.append({"usage": usage_body(outcome)})
            codes.append(None)
    metrics.count_usage(codes)
    return json_response({"results": results})


ROUTES = [
    Route("/v1/usage", record_usage, methods=["POST"]),
    Route("/v1/usage/batch", record_usage_batch, methods=["POST"]),
]
