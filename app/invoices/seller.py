"""Who issues the invoices: the seller's name, address, tax id and support email.

Read from the settings (SELLER_NAME, SELLER_ADDRESS, SELLER_TAX_ID, SELLER_EMAIL) and
frozen onto each invoice when it is issued, like the buyer's billing address: a later
change of the settings never rewrites an issued invoice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.config import Settings, get_settings


@dataclass(frozen=True, slots=True)
class Seller:
    name: str
    address_lines: tuple[str, ...]
    tax_id: str | None
    email: str | None

    @classmethod
    def of(cls, settings: Settings) -> Seller:
        lines = tuple(line.strip() for line in settings.seller_address.splitlines())
        return cls(
            name=settings.seller_name.strip() or "Creditline",
            address_lines=tuple(line for line in lines if line),
            tax_id=settings.seller_tax_id.strip() or None,
            email=settings.seller_email.strip() or None,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "address": list(self.address_lines),
            "taxId": self.tax_id,
            "email": self.email,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Seller:
        address = data.get("address")
        return cls(
            name=str(data.get("name") or ""),
            address_lines=tuple(str(line) for line in address) if isinstance(address, list) else (),
            tax_id=data.get("taxId") if isinstance(data.get("taxId"), str) else None,
            email=data.get("email") if isinstance(data.get("email"), str) else None,
        )

    def printed_lines(self) -> list[str]:
        """Name, address, tax id and email, as the PDF prints them."""
        lines = [self.name, *self.address_lines]
        if self.tax_id:
            lines.append(f"Tax ID: {self.tax_id}")
        if self.email:
            lines.append(self.email)
        return lines


_configured: Seller | None = None


def configure(settings: Settings) -> None:
    """The app's settings (create_app); until then, the environment's."""
    global _configured
    _configured = Seller.of(settings)


def current() -> Seller:
    """The seller new invoices are issued by."""
    return _configured if _configured is not None else Seller.of(get_settings())
