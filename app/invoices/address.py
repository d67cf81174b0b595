"""The team's billing address: validating client input, saving it, reading it back."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

from app.events import commit
from app.invoices.countries import COUNTRIES, POSTAL_CODES, STATE_REQUIRED
from app.invoices.models import BillingAddress
from app.invoices.tax_ids import CONTROL, TaxId, validate_tax_id
from app.kit import clock
from app.kit.errors import DomainError, ErrorCode
from app.teams.audit import service as audit
from app.teams.audit.models import AuditAction

MAX_LENGTHS = {
    "name": 200,
    "organization": 200,
    "email": 254,
    "line1": 200,
    "line2": 200,
    "city": 100,
    "state": 100,
    "postalCode": 20,
}
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s.]+")


@dataclass(frozen=True, slots=True)
class BillingAddressChanged:
    """Announced when a team's billing details were saved: billing syncs them to Stripe."""

    team_id: uuid.UUID


@dataclass(frozen=True, slots=True)
class Address:
    """Validated billing details; also the frozen copy an invoice keeps (`to_json`)."""

    name: str
    organization: str | None
    email: str | None
    line1: str
    line2: str | None
    city: str
    state: str | None
    postal_code: str | None
    country: str
    tax_id: TaxId | None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "organization": self.organization,
            "email": self.email,
            "line1": self.line1,
            "line2": self.line2,
            "city": self.city,
            "state": self.state,
            "postal_code": self.postal_code,
            "country": self.country,
            "tax_id": {"type": self.tax_id.type, "value": self.tax_id.value}
            if self.tax_id
            else None,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Address:
        tax = data.get("tax_id")
        return cls(
            name=data["name"],
            organization=data.get("organization"),
            email=data.get("email"),
            line1=data["line1"],
            line2=data.get("line2"),
            city=data["city"],
            state=data.get("state"),
            postal_code=data.get("postal_code"),
            country=data["country"],
            tax_id=TaxId(tax["type"], tax["value"]) if tax else None,
        )

    @classmethod
    def of(cls, row: BillingAddress) -> Address:
        return cls(
            name=row.name,
            organization=row.organization,
            email=row.email,
            line1=row.line1,
            line2=row.line2,
            city=row.city,
            state=row.state,
            postal_code=row.postal_code,
            country=row.country,
            tax_id=TaxId(row.tax_id_type, row.tax_id_value)
            if row.tax_id_type and row.tax_id_value
            else None,
        )

    def printed_lines(self) -> list[str]:
        """The address block as printed on an invoice."""
        if self.state:  # US style: "Springfield, IL 62701"
            locality = f"{self.city}, {self.state} {self.postal_code or ''}".strip()
        else:  # most of the world: "10115 Berlin"
            locality = " ".join(p for p in (self.postal_code, self.city) if p)
        lines = [self.organization, self.name, self.line1, self.line2, locality, self.country]
        lines.append(self.email)
        return [line for line in lines if line]


@dataclass(frozen=True, slots=True)
class AddressInput:
    """Raw input as a client sent it (API field names in errors)."""

    name: str
    line1: str
    city: str
    country: str
    organization: str | None = None
    email: str | None = None
    line2: str | None = None
    state: str | None = None
    postal_code: str | None = None
    tax_id_type: str | None = None
    tax_id_value: str | None = None
    tax_id_given: bool = False


class InvalidAddress(DomainError):
    """Every problem found, each an INVALID_INPUT naming its field; the first is `self`."""

    def __init__(self, errors: list[DomainError]) -> None:
        first = errors[0]
        super().__init__(first.code, first.message, first.field)
        self.errors = errors


def _invalid(field: str, message: str) -> DomainError:
    return DomainError(ErrorCode.INVALID_INPUT, message, field)


# --- the address -----------------------------------------------------------------------------


def validate(data: AddressInput) -> Address:
    """The address in canonical form, or InvalidAddress listing every problem."""
    errors: list[DomainError] = []

    def text(field: str, value: str | None, *, required: bool) -> str | None:
        if value is None or not value.strip():
            if required:
                errors.append(_invalid(field, "Required."))
            return None
        if CONTROL.search(value):
            errors.append(_invalid(field, "Must not contain control characters or line breaks."))
            return None
        cleaned = re.sub(r"\s+", " ", value.strip())
        if len(cleaned) > MAX_LENGTHS[field]:
            errors.append(_invalid(field, f"At most {MAX_LENGTHS[field]} characters."))
            return None
        return cleaned

    name = text("name", data.name, required=True)
    organization = text("organization", data.organization, required=False)
    email = text("email", data.email, required=False)
    if email is not None:
        email = email.lower()
        if not EMAIL.fullmatch(email):
            errors.append(_invalid("email", "Not an email address."))
    line1 = text("line1", data.line1, required=True)
    line2 = text("line2", data.line2, required=False)
    city = text("city", data.city, required=True)
    country = (data.country or "").strip().upper()
    if not country:
        errors.append(_invalid("country", "Required."))
    elif country not in COUNTRIES:
        errors.append(_invalid("country", "Use an ISO 3166-1 alpha-2 code such as US or DE."))
    states = STATE_REQUIRED.get(country)
    state = text("state", data.state, required=states is not None)
    if state is not None and states is not None:
        state = state.upper()
        if state not in states:
            errors.append(_invalid("state", f"Not a {country} state or province code."))
    postal_format = POSTAL_CODES.get(country)
    postal_code = text("postalCode", data.postal_code, required=postal_format is not None)
    if postal_code is not None and postal_format is not None:
        postal_code = postal_code.upper()
        if not postal_format.fullmatch(postal_code):
            errors.append(_invalid("postalCode", f"Not a valid {country} postal code."))
    tax_id: TaxId | None = None
    if data.tax_id_given:
        try:
            tax_id = validate_tax_id(data.tax_id_type or "", data.tax_id_value or "")
        except DomainError as error:
            errors.append(error)
    if errors:
        raise InvalidAddress(errors)
    assert name is not None
    assert line1 is not None
    assert city is not None
    return Address(
        name=name,
        organization=organization,
        email=email,
        line1=line1,
        line2=line2,
        city=city,
        state=state,
        postal_code=postal_code,
        country=country,
        tax_id=tax_id,
    )


async def billing_address(team_id: uuid.UUID) -> Address | None:
    row = await BillingAddress.get_or_none(team_id=team_id)
    return Address.of(row) if row else None


async def update_billing_address(
    team_id: uuid.UUID, data: AddressInput, *, actor: str = audit.SYSTEM
) -> Address:
    """Validates and saves the team's billing details; once committed, billing syncs them
    to Stripe (best effort).

    Issued invoices keep their own copy, so this never changes one.
    """
    address = validate(data)
    values = {
        "name": address.name,
        "organization": address.organization,
        "email": address.email,
        "line1": address.line1,
        "line2": address.line2,
        "city": address.city,
        "state": address.state,
        "postal_code": address.postal_code,
        "country": address.country,
        "tax_id_type": address.tax_id.type if address.tax_id else None,
        "tax_id_value": address.tax_id.value if address.tax_id else None,
        "updated_at": clock.now(),
    }
    async with commit.atomic() as tx:
        conn = tx.conn
        row = await BillingAddress.select_for_update().using_db(conn).get_or_none(team_id=team_id)
        old = Address.of(row).to_json() if row is not None else None
        if row is None:
            await BillingAddress.create(team_id=team_id, using_db=conn, **values)
        else:
            row.update_from_dict({**values, "version": row.version + 1})
            await row.save(using_db=conn)
        if old != address.to_json():
            action = AuditAction.BILLING_ADDRESS_UPDATED
            await audit.record(conn, team_id, actor, action, old, address.to_json())
        tx.announce(BillingAddressChanged(team_id))
    return address
