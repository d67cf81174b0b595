"""The Stripe boundary: the only module of the app that imports `stripe`.

`StripeGateway` wraps one async `stripe.StripeClient` (httpx transport) and
returns plain frozen dataclasses; Stripe errors become the domain exceptions
below. Works against real Stripe and against the `localstripe` emulator
(see `app.payments.emulator`); emulator quirks are noted where they matter.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast
from urllib.parse import urlsplit

import stripe

if TYPE_CHECKING:
    from stripe.params import (
        CustomerCreateParams,
        CustomerTaxIdCreateParams,
        CustomerUpdateParams,
        PaymentIntentCreateParams,
        SetupIntentCreateParams,
    )

T = TypeVar("T")
PaymentMethodType = Literal["card", "us_bank_account"]


# -- results -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SetupIntentResult:
    id: str
    client_secret: str


@dataclass(frozen=True, slots=True)
class PaymentMethodInfo:
    """A saved card or bank account. `brand` is the bank name for bank accounts."""

    id: str
    type: PaymentMethodType
    brand: str | None
    last4: str | None
    exp_month: int | None
    exp_year: int | None
    customer: str | None


@dataclass(frozen=True, slots=True)
class PaymentIntentResult:
    """`status`: succeeded | processing | requires_action | requires_payment_method | ..."""

    id: str
    status: str
    client_secret: str | None
    last_payment_error_message: str | None
    amount: int


# -- errors --------------------------------------------------------------------------


class PaymentGatewayError(Exception):
    """Stripe refused the request (base class; message is Stripe's)."""


class PaymentDeclined(PaymentGatewayError):
    """The bank declined (or needs authentication the customer can't give now)."""

    def __init__(
        self, message: str, payment_intent_id: str | None, code: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.payment_intent_id = payment_intent_id
        self.code = code  # e.g. card_declined, authentication_required


class StripeUnavailable(PaymentGatewayError):
    """Network error, Stripe 5xx/429, or bad credentials: try again later."""


class InvalidPaymentMethod(PaymentGatewayError):
    """The payment method id is unknown, not usable or not of an accepted type."""


class InvalidTaxId(PaymentGatewayError):
    """Stripe rejected the tax id type or value."""


class WebhookSignatureError(PaymentGatewayError):
    """Bad `Stripe-Signature`, stale timestamp or malformed body."""


_Kind = Literal["pm", "tax", "other"]


# -- gateway -------------------------------------------------------------------------


class StripeGateway:
    """Async Stripe client for one process; call `aclose()` at shutdown."""

    def __init__(
        self,
        api_key: str,
        api_base: str | None,
        max_network_retries: int = 0,
        *,
        timeout: float = 30.0,
        legacy_payment_method_types: bool | None = None,
    ) -> None:
        """`legacy_payment_method_types`: send `payment_method_types` (localstripe)
        instead of `allowed_payment_method_types` (the SDK's API version
        2026-10-28.endive rejects the former). None: True iff `api_base` is set
        and is not a stripe.com URL."""
        if legacy_payment_method_types is None:
            host = (urlsplit(api_base).hostname or "") if api_base else "api.stripe.com"
            legacy_payment_method_types = not (host == "stripe.com" or host.endswith(".stripe.com"))
        self._types_param = (
            "payment_method_types"
            if legacy_payment_method_types
            else "allowed_payment_method_types"
        )
        self._http = stripe.HTTPXClient(timeout=timeout)  # async-only transport
        self._client = stripe.StripeClient(
            api_key,
            base_addresses={"api": api_base} if api_base else None,
            http_client=self._http,
            # Per client; stripe.max_network_retries (global, default 2) is ignored.
            max_network_retries=max_network_retries,
        )

    async def aclose(self) -> None:
        """Close the underlying httpx.AsyncClient."""
        await self._http.close_async()  # type: ignore[no-untyped-call]

    # -- customers -------------------------------------------------------------------

    async def create_customer(
        self, team_id: str, name: str, email: str | None, *, idempotency_key: str | None = None
    ) -> str:
        """Create the team's customer (metadata.team_id); returns its id."""
        params: dict[str, Any] = {"name": name, "metadata": {"team_id": team_id}}
        if email:
            params["email"] = email
        customer = await self._call(
            self._client.v1.customers.create_async(
                cast("CustomerCreateParams", params),
                {"idempotency_key": idempotency_key},
            )
        )
        return customer.id

    async def update_customer(
        self,
        customer_id: str,
        name: str | None = None,
        email: str | None = None,
        address: Mapping[str, str | None] | None = None,
        *,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        """Update the given fields; None leaves a field unchanged.

        `address` keys: line1, line2, city, state, postal_code, country.
        """
        params: dict[str, Any] = {}
        if name is not None:
            params["name"] = name
        if email is not None:
            params["email"] = email
        if address is not None:
            params["address"] = {k: v for k, v in address.items() if v is not None}
        if metadata is not None:
            params["metadata"] = dict(metadata)
        if params:
            await self._call(
                self._client.v1.customers.update_async(
                    customer_id, cast("CustomerUpdateParams", params)
                )
            )

    async def create_tax_id(
        self, customer_id: str, type: str, value: str, *, replace_existing: bool = True
    ) -> str:
        """Add a tax id (e.g. eu_vat, us_ein), first deleting existing ones; returns its id."""
        if replace_existing:
            await self.delete_tax_ids(customer_id)
        params = cast("CustomerTaxIdCreateParams", {"type": type, "value": value})
        tax_id = await self._call(
            self._client.v1.customers.tax_ids.create_async(customer_id, params), "tax"
        )
        return tax_id.id

    async def delete_tax_ids(self, customer_id: str) -> None:
        """Delete every tax id of the customer."""
        for _ in range(20):  # pages of 10; a customer has a handful at most
            page = await self._call(self._client.v1.customers.tax_ids.list_async(customer_id))
            for tax_id in page.data:
                await self._call(
                    self._client.v1.customers.tax_ids.delete_async(customer_id, tax_id.id)
                )
            if not page.data or not page.has_more:
                return

    # -- payment methods -------------------------------------------------------------

    async def create_setup_intent(
        self,
        customer_id: str,
        payment_method_types: Sequence[str],
        *,
        idempotency_key: str | None = None,
    ) -> SetupIntentResult:
        """SetupIntent for saving a method off-session (Stripe.js confirms it)."""
        params: dict[str, Any] = {
            "customer": customer_id,
            self._types_param: list(payment_method_types),
            "usage": "off_session",
        }
        intent = await self._call(
            self._client.v1.setup_intents.create_async(
                cast("SetupIntentCreateParams", params),
                {"idempotency_key": idempotency_key},
            )
        )
        return SetupIntentResult(id=intent.id, client_secret=intent.client_secret or "")

    async def retrieve_payment_method(self, pm_id: str) -> PaymentMethodInfo:
        """Look a payment method up (its `customer` tells who owns it)."""
        pm = await self._call(self._client.v1.payment_methods.retrieve_async(pm_id), "pm")
        return _payment_method_info(pm)

    async def attach_payment_method(self, pm_id: str, customer_id: str) -> PaymentMethodInfo:
        """Attach to the customer. Use the returned id: test ids like
        `pm_card_visa` become a new `pm_...` object."""
        pm = await self._call(
            self._client.v1.payment_methods.attach_async(pm_id, {"customer": customer_id}),
            "pm",
        )
        return _payment_method_info(pm)

    async def detach_payment_method(self, pm_id: str) -> None:
        """Detach from its customer (permanent at Stripe)."""
        await self._call(self._client.v1.payment_methods.detach_async(pm_id), "pm")

    async def set_default_payment_method(self, customer_id: str, pm_id: str) -> None:
        """Set `invoice_settings.default_payment_method`."""
        await self._call(
            self._client.v1.customers.update_async(
                customer_id, {"invoice_settings": {"default_payment_method": pm_id}}
            ),
            "pm",
        )

    # -- payments --------------------------------------------------------------------

    async def create_payment_intent(
        self,
        amount_cents: int,
        customer_id: str,
        payment_method_id: str,
        *,
        off_session: bool,
        payment_method_types: Sequence[str],
        metadata: Mapping[str, str],
        idempotency_key: str,
        currency: str = "usd",
    ) -> PaymentIntentResult:
        """Create and confirm a PaymentIntent.

        Returns with status succeeded, processing (bank debits) or requires_action
        (3-D Secure: hand `client_secret` to Stripe.js). Raises `PaymentDeclined`.
        """
        params: dict[str, Any] = {
            "amount": amount_cents,
            "currency": currency,
            "customer": customer_id,
            "payment_method": payment_method_id,
            self._types_param: list(payment_method_types),
            "metadata": dict(metadata),
            "confirm": True,
            "off_session": off_session,
        }
        intent = await self._call(
            self._client.v1.payment_intents.create_async(
                cast("PaymentIntentCreateParams", params),
                {"idempotency_key": idempotency_key},
            ),
            "pm",
        )
        return _payment_intent_result(intent)

    async def retrieve_payment_intent(self, payment_intent_id: str) -> PaymentIntentResult:
        """Current state of a PaymentIntent."""
        intent = await self._call(self._client.v1.payment_intents.retrieve_async(payment_intent_id))
        return _payment_intent_result(intent)

    # -- webhooks --------------------------------------------------------------------

    @staticmethod
    def construct_event(
        payload: bytes, sig_header: str, secret: str, tolerance: int = 300
    ) -> dict[str, Any]:
        """Verify `Stripe-Signature` and return the event as a plain dict."""
        try:
            stripe.Webhook.construct_event(payload, sig_header, secret, tolerance)
            event = json.loads(payload)
        except stripe.SignatureVerificationError as e:
            raise WebhookSignatureError(e.user_message or "bad signature") from e
        except (ValueError, AttributeError, TypeError) as e:
            raise WebhookSignatureError(f"malformed webhook body: {e}") from e
        if not isinstance(event, dict):
            raise WebhookSignatureError("malformed webhook body")
        return event

    @staticmethod
    def sign_payload(payload: str, secret: str, timestamp: int | None = None) -> str:
        """A valid `Stripe-Signature` header for `payload` (tests)."""
        header: str = stripe.WebhookSignature.generate_signature_header(payload, secret, timestamp)
        return header

    # -- error mapping ---------------------------------------------------------------

    async def _call(self, request: Awaitable[T], kind: _Kind = "other") -> T:
        try:
            return await request
        except stripe.CardError as e:
            raise PaymentDeclined(
                e.user_message or "Your card was declined.",
                await self._declined_intent_id(e),
                e.code,
            ) from e
        except stripe.InvalidRequestError as e:
            message = e.user_message or "invalid request"
            # localstripe sends no `param`; Stripe names it (payment_method, customer)
            if kind == "pm" and (not e.param or "payment_method" in e.param):
                raise InvalidPaymentMethod(message) from e
            if kind == "tax":
                raise InvalidTaxId(message) from e
            raise PaymentGatewayError(message) from e
        except (
            stripe.APIConnectionError,
            stripe.APIError,
            stripe.RateLimitError,
            stripe.AuthenticationError,
            stripe.PermissionError,
        ) as e:
            raise StripeUnavailable(e.user_message or type(e).__name__) from e
        except stripe.StripeError as e:
            raise PaymentGatewayError(e.user_message or type(e).__name__) from e

    async def _declined_intent_id(self, e: stripe.CardError) -> str | None:
        """Stripe puts the PaymentIntent in the error; localstripe only the charge."""
        err = e.error
        if err is None:
            return None
        intent = getattr(err, "payment_intent", None)
        if intent is not None:
            return str(intent if isinstance(intent, str) else intent.id)
        charge_id = getattr(err, "charge", None)
        if not charge_id:
            return None
        try:
            charge = await self._client.v1.charges.retrieve_async(charge_id)
        except stripe.StripeError:
            return None
        pi = charge.payment_intent
        return pi if isinstance(pi, str) or pi is None else pi.id


def _payment_method_info(pm: stripe.PaymentMethod) -> PaymentMethodInfo:
    customer = (
        pm.customer if isinstance(pm.customer, str) or pm.customer is None else pm.customer.id
    )
    if pm.type == "card" and pm.card is not None:
        card = pm.card
        return PaymentMethodInfo(
            id=pm.id,
            type="card",
            brand=card.brand,
            last4=card.last4,
            exp_month=card.exp_month,
            exp_year=card.exp_year,
            customer=customer,
        )
    if pm.type == "us_bank_account" and pm.us_bank_account is not None:
        bank = pm.us_bank_account
        return PaymentMethodInfo(
            id=pm.id,
            type="us_bank_account",
            brand=bank.bank_name,
            last4=bank.last4,
            exp_month=None,
            exp_year=None,
            customer=customer,
        )
    raise InvalidPaymentMethod(f"unsupported payment method type {pm.type!r}")


def _payment_intent_result(intent: stripe.PaymentIntent) -> PaymentIntentResult:
    error = intent.last_payment_error
    return PaymentIntentResult(
        id=intent.id,
        status=intent.status,
        client_secret=intent.client_secret,
        last_payment_error_message=error.message if error is not None else None,
        amount=intent.amount,
    )
