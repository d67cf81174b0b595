"""Shared by the payments tests (and the others that pay): GraphQL operations, signed webhooks, localstripe helpers and
recorded Stripe responses for what the emulator does not model (ACH debits)."""

from __future__ import annotations

import asyncio
import copy
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import stripe

from app.config import Settings
from app.payments import gateway as payment_gateway
from app.payments.models import PaymentMethod
from app.payments.stripe import StripeGateway
from tests.support.api import Actor, Api

STRIPE_API_KEY = "sk_test_creditline"
STRIPE_WEBHOOK_SECRET = "whsec_test_creditline_0123456789"

PM_FIELDS = "id type brand last4 expMonth expYear isDefault createdAt"
PURCHASE_FIELDS = f"""id amount method status clientSecret paymentIntentId failureReason
  expectedSettlementAt createdAt settledAt refundedAmount withdrawnAmount
  paymentMethod {{ {PM_FIELDS} }}"""

SETUP_INTENT = """mutation($t: ID!, $type: PaymentMethodType!) {
  createSetupIntent(input: {teamId: $t, type: $type}) {
    clientSecret setupIntentId errors { code field message } } }"""
ADD_PM = f"""mutation($t: ID!, $pm: String!, $d: Boolean) {{
  addPaymentMethod(input: {{teamId: $t, stripePaymentMethodId: $pm, makeDefault: $d}}) {{
    paymentMethod {{ {PM_FIELDS} }} errors {{ code field message }} }} }}"""
SET_DEFAULT = f"""mutation($t: ID!, $id: ID!) {{
  setDefaultPaymentMethod(input: {{teamId: $t, paymentMethodId: $id}}) {{
    paymentMethod {{ {PM_FIELDS} }} errors {{ code field message }} }} }}"""
REMOVE_PM = """mutation($t: ID!, $id: ID!) {
  removePaymentMethod(input: {teamId: $t, paymentMethodId: $id}) {
    removedPaymentMethodId errors { code field message } } }"""
METHODS = f"""query($t: ID!) {{ team(id: $t) {{ paymentMethods {{ {PM_FIELDS} }} }} }}"""
PURCHASE = f"""mutation($t: ID!, $a: Decimal!, $m: PurchaseMethod, $pm: ID, $spm: String,
    $k: String) {{
  purchaseCredits(input: {{teamId: $t, amount: $a, method: $m, paymentMethodId: $pm,
      stripePaymentMethodId: $spm, idempotencyKey: $k}}) {{
    purchase {{ {PURCHASE_FIELDS} }} credits {{ total prepaid }} errors {{ code field message }}
  }} }}"""
PURCHASES = f"""query($t: ID!, $first: Int, $after: String) {{ team(id: $t) {{
  purchases(first: $first, after: $after) {{
    edges {{ cursor node {{ {PURCHASE_FIELDS} }} }} pageInfo {{ hasNextPage endCursor }} }} }} }}"""
CREDITS = """query($t: ID!) { team(id: $t) { credits { total prepaid grants { kind amount remaining } }
  } }"""


async def add_card(
    api: Api, actor: Actor, pm: str = "pm_card_visa", make_default: bool | None = None
) -> dict[str, Any]:
    data = await api.ok(ADD_PM, {"t": actor.team_id, "pm": pm, "d": make_default}, actor.token)
    payload: dict[str, Any] = data["addPaymentMethod"]
    assert payload["errors"] == [], payload
    method: dict[str, Any] = payload["paymentMethod"]
    return method


async def buy(api: Api, actor: Actor, amount: str, **variables: Any) -> dict[str, Any]:
    """purchaseCredits; variables: m (method), pm, spm, k (idempotency key)."""
    data = await api.ok(PURCHASE, {"t": actor.team_id, "a": amount, **variables}, actor.token)
    payload: dict[str, Any] = data["purchaseCredits"]
    return payload


async def methods(api: Api, actor: Actor) -> list[dict[str, Any]]:
    data = await api.ok(METHODS, {"t": actor.team_id}, actor.token)
    found: list[dict[str, Any]] = data["team"]["paymentMethods"]
    return found


async def credits_of(api: Api, actor: Actor) -> dict[str, Any]:
    data = await api.ok(CREDITS, {"t": actor.team_id}, actor.token)
    found: dict[str, Any] = data["team"]["credits"]
    return found


async def purchases_of(api: Api, actor: Actor, first: int = 20) -> list[dict[str, Any]]:
    data = await api.ok(PURCHASES, {"t": actor.team_id, "first": first}, actor.token)
    return [edge["node"] for edge in data["team"]["purchases"]["edges"]]


async def wait_for(
    check: Callable[[], Awaitable[bool]], *, within: float = 20.0, what: str = "condition"
) -> None:
    """Polls `check` until it holds (webhooks from the emulator arrive about 1 s later)."""
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


# --- signed webhooks ----------------------------------------------------------------------------


def signed(
    event: dict[str, Any] | str,
    *,
    secret: str = STRIPE_WEBHOOK_SECRET,
    timestamp: int | None = None,
) -> tuple[bytes, dict[str, str]]:
    """The body and headers Stripe would send (`stripe.WebhookSignature` under the hood)."""
    payload = event if isinstance(event, str) else json.dumps(event)
    header = StripeGateway.sign_payload(payload, secret, timestamp)
    return payload.encode(), {"Stripe-Signature": header, "Content-Type": "application/json"}


async def deliver(http: httpx.AsyncClient, event: dict[str, Any]) -> httpx.Response:
    body, headers = signed(event)
    return await http.post("/webhooks/stripe", content=body, headers=headers)


def intent_event(
    type: str,
    *,
    purchase_id: str,
    team_id: str,
    intent_id: str,
    amount_cents: int,
    error: str | None = None,
    event_id: str | None = None,
    methods: tuple[str, ...] = ("us_bank_account",),
) -> dict[str, Any]:
    """A payment_intent.* event as Stripe sends it (trimmed to the fields that matter)."""
    status = {
        "payment_intent.succeeded": "succeeded",
        "payment_intent.processing": "processing",
        "payment_intent.payment_failed": "requires_payment_method",
        "payment_intent.canceled": "canceled",
    }[type]
    succeeded = status == "succeeded"
    return {
        "id": event_id or f"evt_{uuid.uuid4().hex[:24]}",
        "object": "event",
        "api_version": "2026-10-28.endive",
        "created": int(time.time()),
        "livemode": False,
        "pending_webhooks": 1,
        "type": type,
        "data": {
            "object": {
                "id": intent_id,
                "object": "payment_intent",
                "amount": amount_cents,
                "amount_received": amount_cents if succeeded else 0,
                "currency": "usd",
                "customer": "cus_test",
                "status": status,
                "payment_method_types": list(methods),
                "metadata": {"purchase_id": purchase_id, "team_id": team_id},
                "last_payment_error": (
                    {"code": "payment_method_provider_decline", "message": error} if error else None
                ),
            }
        },
    }


def charge_event(
    type: str, *, intent_id: str, amount_cents: int, refunded_cents: int = 0
) -> dict[str, Any]:
    """charge.refunded (a Charge) or charge.dispute.created (a Dispute)."""
    if type == "charge.refunded":
        obj: dict[str, Any] = {
            "id": f"ch_{uuid.uuid4().hex[:24]}",
            "object": "charge",
            "amount": amount_cents,
            "amount_refunded": refunded_cents,
            "refunded": refunded_cents == amount_cents,
            "payment_intent": intent_id,
            "metadata": {},
        }
    else:
        obj = {
            "id": f"dp_{uuid.uuid4().hex[:24]}",
            "object": "dispute",
            "amount": amount_cents,
            "charge": f"ch_{uuid.uuid4().hex[:24]}",
            "payment_intent": intent_id,
            "reason": "fraudulent",
            "status": "needs_response",
        }
    return {
        "id": f"evt_{uuid.uuid4().hex[:24]}",
        "object": "event",
        "created": int(time.time()),
        "type": type,
        "data": {"object": obj},
    }


# --- localstripe ---------------------------------------------------------------------------------


def emulator_client(base_url: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=base_url, auth=(STRIPE_API_KEY, ""), timeout=10)


async def card_payment_method(base_url: str, number: str) -> str:
    """A card PaymentMethod as Stripe.js creates it (not attached to anyone)."""
    async with emulator_client(base_url) as http:
        response = await http.post(
            "/v1/payment_methods",
            data={
                "type": "card",
                "card[number]": number,
                "card[exp_month]": "12",
                "card[exp_year]": "2030",
                "card[cvc]": "123",
            },
        )
    assert response.status_code == 200, response.text
    pm_id: str = response.json()["id"]
    return pm_id


async def authenticate_3ds(
    base_url: str, intent_id: str, client_secret: str, success: bool
) -> None:
    """What Stripe.js confirmCardPayment does after the bank's 3-D Secure page."""
    async with emulator_client(base_url) as http:
        response = await http.post(
            f"/v1/payment_intents/{intent_id}/_authenticate",
            data={"client_secret": client_secret, "success": "true" if success else "false"},
        )
    assert response.status_code == 200, response.text


async def confirm_bank_setup(
    base_url: str, client_secret: str, account_number: str, routing_number: str = "110000000"
) -> dict[str, Any]:
    """What the emulator's Stripe.js confirmUsBankAccountSetup sends; the SetupIntent answered."""
    setup_intent = client_secret.split("_secret_")[0]
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as http:
        response = await http.post(
            f"/v1/setup_intents/{setup_intent}/confirm",
            json={
                "key": "pk_test_creditline",
                "client_secret": client_secret,
                "payment_method_data": {
                    "type": "us_bank_account",
                    "us_bank_account": {
                        "routing_number": routing_number,
                        "account_number": account_number,
                        "account_holder_type": "company",
                    },
                    "billing_details": {"name": "Ada Lovelace"},
                },
            },
        )
    assert response.status_code == 200, response.text
    intent: dict[str, Any] = response.json()
    return intent


# --- recorded Stripe responses (ACH, which localstripe does not model) --------------------------

# Shapes recorded from Stripe's API reference (2026-10-28.endive), ids made up.
RECORDED_BANK_PAYMENT_METHOD: dict[str, Any] = {
    "id": "pm_1QbAnkAcct0000000000000",
    "object": "payment_method",
    "allow_redisplay": "always",
    "billing_details": {
        "address": {
            "city": None,
            "country": None,
            "line1": None,
            "line2": None,
            "postal_code": None,
            "state": None,
        },
        "email": "jenny@example.com",
        "name": "Jenny Rosen",
        "phone": None,
    },
    "created": 1764000000,
    "customer": None,
    "livemode": False,
    "metadata": {},
    "type": "us_bank_account",
    "us_bank_account": {
        "account_holder_type": "individual",
        "account_type": "checking",
        "bank_name": "STRIPE TEST BANK",
        "financial_connections_account": None,
        "fingerprint": "LstWJFsCK7P349Bg",
        "last4": "6789",
        "networks": {"preferred": "ach", "supported": ["ach"]},
        "routing_number": "110000000",
        "status_details": {},
    },
}

RECORDED_PROCESSING_INTENT: dict[str, Any] = {
    "id": "pi_3QbAnkIntent00000000000",
    "object": "payment_intent",
    "amount": 5000,
    "amount_capturable": 0,
    "amount_received": 0,
    "capture_method": "automatic_async",
    "client_secret": "pi_3QbAnkIntent00000000000_secret_recorded",
    "confirmation_method": "automatic",
    "created": 1764000000,
    "currency": "usd",
    "customer": "cus_recorded",
    "last_payment_error": None,
    "latest_charge": None,
    "livemode": False,
    "metadata": {},
    "next_action": None,
    "payment_method": "pm_1QbAnkAcct0000000000000",
    "payment_method_types": ["us_bank_account"],
    "processing": None,
    "setup_future_usage": None,
    "status": "processing",
}


class RecordedAch:
    """A real StripeGateway whose payment-method and payment-intent calls answer with the
    recorded responses above (the SDK parses them as it would Stripe's); customers and
    everything else still go to the emulator. `calls` keeps what was sent."""

    def __init__(self, gateway: StripeGateway, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[tuple[str, Any, Any]] = []
        self.intents = 0
        self.intent_status = "processing"
        self.customer: str | None = None
        v1 = gateway._client.v1
        monkeypatch.setattr(v1.payment_methods, "retrieve_async", self._retrieve)
        monkeypatch.setattr(v1.payment_methods, "attach_async", self._attach)
        monkeypatch.setattr(v1.payment_intents, "create_async", self._create_intent)
        # The emulator would keep an unknown default and then answer 404 for the customer.
        monkeypatch.setattr(gateway, "set_default_payment_method", self._set_default)

    def _method(self) -> stripe.PaymentMethod:
        values = copy.deepcopy(RECORDED_BANK_PAYMENT_METHOD)
        values["customer"] = self.customer
        return stripe.PaymentMethod.construct_from(values, STRIPE_API_KEY)

    async def _retrieve(self, pm_id: str, *args: Any) -> stripe.PaymentMethod:
        self.calls.append(("retrieve_payment_method", pm_id, args))
        if pm_id != RECORDED_BANK_PAYMENT_METHOD["id"]:
            raise stripe.InvalidRequestError("No such PaymentMethod", "payment_method")
        return self._method()

    async def _attach(self, pm_id: str, params: dict[str, Any], *args: Any) -> stripe.PaymentMethod:
        self.calls.append(("attach_payment_method", pm_id, params))
        self.customer = params["customer"]
        return self._method()

    async def _set_default(self, customer_id: str, pm_id: str) -> None:
        self.calls.append(("set_default_payment_method", customer_id, pm_id))

    async def _create_intent(
        self, params: dict[str, Any], options: dict[str, Any]
    ) -> stripe.PaymentIntent:
        self.calls.append(("create_payment_intent", params, options))
        self.intents += 1
        values = copy.deepcopy(RECORDED_PROCESSING_INTENT)
        values.update(
            id=f"pi_recorded_{self.intents}_{uuid.uuid4().hex[:8]}",
            amount=params["amount"],
            customer=params["customer"],
            metadata=params["metadata"],
            status=self.intent_status,
        )
        return stripe.PaymentIntent.construct_from(values, STRIPE_API_KEY)


@asynccontextmanager
async def recorded_ach(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[RecordedAch]:
    """Makes the process's gateway answer with the recordings for the block's duration."""
    gateway = StripeGateway(settings.stripe_api_key, settings.stripe_api_base, 0)
    recorded = RecordedAch(gateway, monkeypatch)
    previous = payment_gateway.set_gateway(gateway)
    try:
        yield recorded
    finally:
        payment_gateway.set_gateway(previous)
        await gateway.aclose()


async def bank_purchase(api: Api, admin: Actor, amount: str = "50.00") -> dict[str, Any]:
    """A PROCESSING bank transfer (the team's bank account is added on first use)."""
    if not await PaymentMethod.exists(team_id=uuid.UUID(admin.team_id), type="BANK_ACCOUNT"):
        await add_card(api, admin, RECORDED_BANK_PAYMENT_METHOD["id"])
    payload = await buy(api, admin, amount, m="BANK_TRANSFER")
    purchase: dict[str, Any] = payload["purchase"]
    assert purchase["status"] == "PROCESSING", payload
    return purchase


def event_for(type: str, purchase: dict[str, Any], admin: Actor, **extra: Any) -> dict[str, Any]:
    """A signed-event body for the purchase's PaymentIntent."""
    cents = int(purchase["amount"].replace(".", ""))
    return intent_event(
        type,
        purchase_id=purchase["id"],
        team_id=admin.team_id,
        intent_id=purchase["paymentIntentId"],
        amount_cents=cents,
        **extra,
    )
