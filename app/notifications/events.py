"""The event types: which go to webhooks, which are emailed."""

from __future__ import annotations

# The public events an endpoint may subscribe to (names fixed by the API contract).
WEBHOOK_EVENTS: tuple[str, ...] = (
    "credits.low",
    "credits.exhausted",
    "invoiced_limit.reached",
    "team.blocked",
    "team.unblocked",
    "purchase.succeeded",
    "purchase.failed",
    "invoice.issued",
    "invoice.paid",
    "invoice.payment_failed",
    "hold.expired",
)

# Emailed to the team (admins and notification emails): every alert, receipts, invoices.
TEAM_EMAILS: frozenset[str] = frozenset(
    {
        "credits.low",
        "credits.exhausted",
        "invoiced_limit.reached",
        "alert.raised",  # the other alerts: a failed charge, a paused auto top-up, ...
        "purchase.succeeded",  # the receipt, with the invoice PDF attached
        "invoice.issued",  # monthly invoices only (a purchase's is in its receipt)
    }
)
# Emailed to the address the event names.
INVITATION = "invitation.created"
