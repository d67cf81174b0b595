"""The best-effort sync of a team's billing details to its Stripe customer.

Saving an address announces `BillingAddressChanged`; the handler registered here pushes
it once the save has committed. A failure never loses the saved address: the row keeps
the error and stays behind (`synced_version < version`) for `resync_pending` to retry.
"""

from __future__ import annotations

import uuid

import structlog
from tortoise.expressions import F

from app.events import commit
from app.invoices.address import Address, BillingAddressChanged
from app.invoices.models import BillingAddress
from app.payments.customers import ensure_customer
from app.payments.gateway import gateway as payment_gateway
from app.payments.stripe import InvalidTaxId

log = structlog.get_logger(__name__)


async def sync_to_stripe(team_id: uuid.UUID) -> bool:
    """Pushes the saved details to the team's Stripe customer; False (logged) when that failed."""
    row = await BillingAddress.get_or_none(team_id=team_id)
    if row is None or row.synced_version >= row.version:
        return True
    version = row.version
    address = Address.of(row)
    note: str | None = None
    try:
        customer_id = await ensure_customer(team_id)
        gateway = payment_gateway()
        await gateway.update_customer(
            customer_id,
            name=address.organization or address.name,
            email=address.email,
            # Empty strings clear what the customer no longer has (Stripe treats them as unset).
            address={
                "line1": address.line1,
                "line2": address.line2 or "",
                "city": address.city,
                "state": address.state or "",
                "postal_code": address.postal_code or "",
                "country": address.country,
            },
            metadata={"billing_name": address.name},
        )
        if address.tax_id is None:
            await gateway.delete_tax_ids(customer_id)
        else:
            try:
                await gateway.create_tax_id(customer_id, address.tax_id.type, address.tax_id.value)
            except InvalidTaxId as exc:
                # Ours is valid by our rules; Stripe (or its emulator) may still refuse a type
                # or value. Trying again would not help: keep it on our side and note it.
                note = f"Stripe refused the tax id: {exc}"[:500]
                log.warning("billing_address.tax_id_refused", team_id=str(team_id), error=str(exc))
    except Exception as exc:  # noqa: BLE001 - best effort: the saved address must stand
        log.warning(
            "billing_address.stripe_sync_failed", team_id=str(team_id), error=repr(exc)[:300]
        )
        await BillingAddress.filter(team_id=team_id, version=version).update(
            sync_error=f"{type(exc).__name__}: {exc}"[:500]
        )
        return False
    await BillingAddress.filter(team_id=team_id, version=version).update(
        synced_version=version, sync_error=note
    )
    return True


async def resync_pending(limit: int = 100) -> int:
    """Retries the Stripe sync of addresses whose last save did not reach Stripe."""
    team_ids = (
        await BillingAddress.filter(synced_version__lt=F("version"))
        .limit(limit)
        .values_list("team_id", flat=True)
    )
    synced = 0
    for team_id in team_ids:
        if isinstance(team_id, uuid.UUID) and await sync_to_stripe(team_id):
            synced += 1
    return synced


async def _on_address_changed(changed: BillingAddressChanged) -> None:
    await sync_to_stripe(changed.team_id)


commit.on(BillingAddressChanged, _on_address_changed)
