"""What the development emulator adds to `localstripe`: US bank accounts and a state file.

Imported only inside the emulator's child process (`app.payments.emulator` starts it);
the app never imports this module, so `localstripe` stays a development dependency.

* ``us_bank_account`` PaymentMethods (routing + account number), SetupIntents for them
  that succeed at once (instant verification, as Stripe's test mode offers), and a
  ``confirmUsBankAccountSetup`` in the emulator's Stripe.js.
* ACH debits: a PaymentIntent paid by a bank account is ``processing`` (webhook
  ``payment_intent.processing``) and settles after ``settle_seconds``: ``succeeded``, or
  ``requires_payment_method`` with Stripe's failure code for its test account numbers
  (https://docs.stripe.com/payments/ach-direct-debit/accept-a-payment, "Test account
  numbers": 000123456789 succeeds, 000111111113 fails as account_closed, ...).
* State kept in one pickle file (written atomically after each change) and read at start,
  so customers, cards and bank accounts outlive a restart; a debit still pending when the
  emulator stopped settles after the start, when its time has come.

See docs/development.md.
"""

from __future__ import annotations

import asyncio
import os
import pickle
import re
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web
from localstripe import resources, server
from localstripe.errors import UserError
from localstripe.webhooks import schedule_webhook

# Stripe's test routing number answers with this bank name.
TEST_BANKS = {"110000000": "STRIPE TEST BANK"}
# Stripe's ACH test account numbers that fail, with the charge's failure code and message.
FAILING_ACCOUNTS = {
    "000111111113": ("account_closed", "The customer's bank account has been closed."),
    "000111111116": ("no_account", "The customer's bank account could not be located."),
    "000222222227": (
        "insufficient_funds",
        "The customer's account has insufficient funds to cover this payment.",
    ),
    "000333333335": (
        "debit_not_authorized",
        "The customer notified their bank that this payment was unauthorized.",
    ),
}
DEFAULT_SETTLE_SECONDS = 10.0

_BANK_JS = r"""
;(() => {
  // Added by Creditline's emulator (app/payments/emulator_patches.py): US bank accounts.
  const base = Stripe;
  Stripe = (apiKey) => {
    const stripe = base(apiKey);
    stripe.confirmUsBankAccountSetup = async (clientSecret, data) => {
      try {
        const seti = clientSecret.match(/^(seti_\w+)_secret_/)[1];
        const response = await fetch(
          `${LOCALSTRIPE_BASE_API}/v1/setup_intents/${seti}/confirm`, {
            method: 'POST',
            body: JSON.stringify({
              key: apiKey,
              use_stripe_sdk: true,
              client_secret: clientSecret,
              payment_method_data: {
                type: 'us_bank_account', ...((data || {}).payment_method || {}),
              },
            }),
          });
        const body = await response.json().catch(() => ({}));
        if (response.status !== 200 || body.error) {
          return {error: body.error || {message: `HTTP ${response.status}`}};
        }
        return {setupIntent: body};
      } catch (err) {
        return {error: {message: String(err)}};
      }
    };
    return stripe;
  };
})();
"""


def _aba_checksum_ok(routing: str) -> bool:
    digits = [int(c) for c in routing]
    weights = (3, 7, 1) * 3
    return sum(d * w for d, w in zip(digits, weights, strict=True)) % 10 == 0


def _bad(message: str, param: str) -> UserError:
    return UserError(400, message, {"code": "parameter_invalid", "param": param})


def _bank_details(us_bank_account: Any, billing_details: Any) -> dict[str, str]:
    if not isinstance(us_bank_account, dict):
        raise _bad("Missing required param: us_bank_account.", "us_bank_account")
    routing = str(us_bank_account.get("routing_number") or "")
    account = str(us_bank_account.get("account_number") or "")
    holder = str(us_bank_account.get("account_holder_type") or "individual")
    kind = str(us_bank_account.get("account_type") or "checking")
    if not re.fullmatch(r"[0-9]{9}", routing) or not _aba_checksum_ok(routing):
        raise _bad("Routing number is invalid.", "us_bank_account[routing_number]")
    if not re.fullmatch(r"[0-9]{4,17}", account):
        raise _bad("Account number is invalid.", "us_bank_account[account_number]")
    if holder not in ("individual", "company"):
        raise _bad("Invalid account_holder_type.", "us_bank_account[account_holder_type]")
    if kind not in ("checking", "savings"):
        raise _bad("Invalid account_type.", "us_bank_account[account_type]")
    name = billing_details.get("name") if isinstance(billing_details, dict) else None
    if not isinstance(name, str) or not name.strip():
        raise _bad("Missing required param: billing_details[name].", "billing_details[name]")
    return {"routing": routing, "account": account, "holder": holder, "kind": kind}


def _patch_payment_methods() -> None:
    original = resources.PaymentMethod.__init__

    def init(
        self: Any,
        type: Any = None,
        billing_details: Any = None,
        us_bank_account: Any = None,
        **kwargs: Any,
    ) -> None:
        if type != "us_bank_account":
            if us_bank_account is not None:
                raise UserError(400, "Bad request")
            original(self, type=type, billing_details=billing_details, **kwargs)
            return
        metadata = kwargs.pop("metadata", None)
        if kwargs:
            raise UserError(400, "Unexpected " + ", ".join(kwargs.keys()))
        bank = _bank_details(us_bank_account, billing_details)
        # All exceptions must be raised before this point (it stores the object).
        resources.StripeObject.__init__(self)
        self.type = "us_bank_account"
        self.billing_details = billing_details
        self._account_number = bank["account"]
        self.us_bank_account = {
            "account_holder_type": bank["holder"],
            "account_type": bank["kind"],
            "bank_name": TEST_BANKS.get(bank["routing"], "TEST BANK"),
            "fingerprint": resources.fingerprint(bank["routing"] + bank["account"]),
            "last4": bank["account"][-4:],
            "routing_number": bank["routing"],
            "networks": {"preferred": "ach", "supported": ["ach"]},
            "status_details": None,
        }
        self.customer = None
        self.metadata = metadata or {}

    resources.PaymentMethod.__init__ = init


def _patch_setup_intents() -> None:
    original = resources.SetupIntent.__init__

    def init(self: Any, payment_method_types: Any = None, **kwargs: Any) -> None:
        types = payment_method_types
        if isinstance(types, list) and "us_bank_account" in types:
            # localstripe checks the types against its own list; it accepts "card".
            others = [t for t in types if t != "us_bank_account"] or ["card"]
            original(self, payment_method_types=others, **kwargs)
            self.payment_method_types = types
            return
        original(self, payment_method_types=types, **kwargs)

    resources.SetupIntent.__init__ = init


def _is_bank(charge: Any) -> bool:
    if not charge.payment_method:
        return False
    pm = resources.PaymentMethod._api_retrieve(charge.payment_method)
    return bool(pm.type == "us_bank_account")


def _settle(charge: Any) -> None:
    """The debit's outcome, as Stripe reports it days later."""
    if charge.status != "pending":
        return
    pm = resources.PaymentMethod._api_retrieve(charge.payment_method)
    intent = (
        resources.PaymentIntent._api_retrieve(charge.payment_intent)
        if charge.payment_intent
        else None
    )
    failure = FAILING_ACCOUNTS.get(pm._account_number)
    if failure is not None:
        charge.status = "failed"
        charge.failure_code, charge.failure_message = failure
        if intent is not None:
            intent._report_async_failure()
    else:
        txn = resources.BalanceTransaction(
            amount=charge.amount,
            currency=charge.currency,
            description=charge.description,
            exchange_rate=1.0,
            reporting_category="charge",
            source=charge.id,
            type="charge",
        )
        charge.balance_transaction = txn.id
        charge.status = "succeeded"
        if intent is not None:
            intent._on_success()
    resources.store.dump_to_disk()


# The settlement tasks, referenced until they end (the loop keeps only weak references).
_settling: set[asyncio.Future[None]] = set()


def _schedule_settlement(charge: Any) -> None:
    async def later() -> None:
        await asyncio.sleep(max(0.0, charge._settles_at - time.time()))
        _settle(charge)

    task = asyncio.ensure_future(later())
    _settling.add(task)
    task.add_done_callback(_settling.discard)


def _patch_charges(settle_seconds: float) -> None:
    original = resources.Charge._initialize_charge

    def initialize(
        self: Any,
        on_success: Any = None,
        on_failure_now: Any = None,
        on_failure_later: Any = None,
    ) -> None:
        if not _is_bank(self):
            original(self, on_success, on_failure_now, on_failure_later)
            return
        # Settled by `_settle` through the PaymentIntent (not these callbacks), so a debit
        # pending when the emulator stopped still settles after a restart.
        self.status = "pending"
        self._settles_at = time.time() + settle_seconds
        if self.payment_intent:
            intent = resources.PaymentIntent._api_retrieve(self.payment_intent)
            schedule_webhook(resources.Event("payment_intent.processing", intent))
        _schedule_settlement(self)

    resources.Charge._initialize_charge = initialize


def _patch_store(state_file: Path | None) -> None:
    """Keeps the store in `state_file` (None: in memory only, nothing read or written)."""
    if state_file is None:
        resources.Store.dump_to_disk = lambda self: None
        resources.Store.try_load_from_disk = lambda self: None
        return
    state_file.parent.mkdir(parents=True, exist_ok=True)
    loading = False

    def dump(self: Any) -> None:
        if loading:
            return
        partial = state_file.with_name(state_file.name + ".tmp")
        with open(partial, "wb") as f:
            pickle.dump(dict(self), f, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(partial, state_file)  # a crash mid-write never leaves half a file

    def load(self: Any) -> None:
        nonlocal loading
        loading = True
        try:
            with open(state_file, "rb") as f:
                saved = pickle.load(f)  # our own file under data/
            self.clear()
            self.update(saved)
        except FileNotFoundError:
            pass
        except Exception as error:  # noqa: BLE001 - unreadable: keep it aside, start empty
            aside = state_file.with_name(state_file.name + ".unreadable")
            os.replace(state_file, aside)
            print(f"localstripe state {state_file} unreadable ({error!r}); moved to {aside}",
                  file=sys.stderr)  # fmt: skip
        finally:
            loading = False

    resources.Store.dump_to_disk = dump
    resources.Store.try_load_from_disk = load


async def _resume_pending(app: web.Application) -> None:
    for key, obj in list(resources.store.items()):
        if key.startswith("charge:") and obj.status == "pending" and hasattr(obj, "_settles_at"):
            _schedule_settlement(obj)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _bank_js(request: web.Request, handler: Handler) -> web.StreamResponse:
    response = await handler(request)
    if request.path == "/js.stripe.com/v3/" and isinstance(response, web.Response):
        text = (response.text or "") + _BANK_JS
        return web.Response(text=text, content_type="application/javascript")
    return response


def install(state_file: Path | None, settle_seconds: float) -> web.Application:
    """Patches localstripe in this process and returns its aiohttp app, state loaded."""
    _patch_store(state_file)
    _patch_payment_methods()
    _patch_setup_intents()
    _patch_charges(settle_seconds)
    resources.store.try_load_from_disk()
    app: web.Application = server.app
    app.middlewares.append(_bank_js)
    app.on_startup.append(_resume_pending)
    return app
