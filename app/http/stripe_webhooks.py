"""`POST /webhooks/stripe`: 400 unless signed by Stripe, then handled once (billing)."""

from __future__ import annotations

import structlog
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app.billing.stripe_events import handle_event
from app.config import Settings
from app.payments.events import MalformedEvent, parse_event
from app.payments.stripe import StripeGateway, StripeUnavailable, WebhookSignatureError

log = structlog.get_logger(__name__)

MAX_BODY = 1024 * 1024  # Stripe events are a few KB


async def stripe_webhook(request: Request) -> Response:
    """The Starlette endpoint: 400 for anything not signed by Stripe or not an event."""
    settings: Settings = request.app.state.settings
    secret = settings.stripe_webhook_secret
    if not secret:
        log.error("payments.webhook_secret_missing")
        return JSONResponse({"error": "webhooks are not configured"}, 503)
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY:
        return JSONResponse({"error": "body too large"}, 413)
    body = await request.body()
    if len(body) > MAX_BODY:
        return JSONResponse({"error": "body too large"}, 413)
    try:
        payload = StripeGateway.construct_event(
            body, request.headers.get("stripe-signature", ""), secret
        )
        event = parse_event(payload)
    except (WebhookSignatureError, MalformedEvent) as error:
        return JSONResponse({"error": str(error)}, 400)
    try:
        outcome = await handle_event(event)
    except StripeUnavailable:
        # Stripe retries a failed delivery; nothing was recorded.
        return JSONResponse({"error": "Stripe unavailable, retry later"}, 503)
    return JSONResponse({"received": True, "outcome": outcome})
