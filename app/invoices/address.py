"""Billing address and tax id: validation, storage, and the best-effort sync to Stripe."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog
from tortoise.transactions import in_transaction

from app.invoices.models import BillingAddress
from app.kit import clock
from app.kit.errors import DomainError, ErrorCode
from app.teams.audit import service as audit
from app.teams.audit.models import AuditAction

log = structlog.get_logger(__name__)


# ISO 3166-1 alpha-2 (the 249 assigned codes), plus XK (Kosovo), which Stripe also accepts.
def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


COUNTRIES = _words(
    """AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ
    BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO
    DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU
    GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW
    KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU
    MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW
    PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF
    TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA
    ZM ZW XK"""
)

US_STATES = _words(
    """AL AK AZ AR CA CO CT DE FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH NJ
    NM NY NC ND OH OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY DC PR GU VI AS MP UM AA AE
    AP"""
)
CA_PROVINCES = _words("AB BC MB NB NL NS NT NU ON PE QC SK YT")

# Postal code formats where we know them; there the postal code is also required.
POSTAL_CODES: dict[str, re.Pattern[str]] = {
    "US": re.compile(r"\d{5}(-\d{4})?"),
    "CA": re.compile(r"[A-Z]\d[A-Z] ?\d[A-Z]\d"),
    "GB": re.compile(r"[A-Z]{1,2}\d[A-Z\d]? ?\d[A-Z]{2}"),
    "DE": re.compile(r"\d{5}"),
    "FR": re.compile(r"\d{5}"),
    "ES": re.compile(r"\d{5}"),
    "IT": re.compile(r"\d{5}"),
    "NL": re.compile(r"\d{4} ?[A-Z]{2}"),
    "AU": re.compile(r"\d{4}"),
    "IN": re.compile(r"\d{6}"),
    "JP": re.compile(r"\d{3}-?\d{4}"),
}
STATE_REQUIRED = {"US": US_STATES, "CA": CA_PROVINCES}

# Stripe's tax id types (customer tax_ids.create, stripe-python 16.1).
TAX_ID_TYPES = _words(
    """ad_nrt ae_trn al_tin am_tin ao_tin ar_cuit au_abn au_acn au_arn au_wpn aw_tin az_tin ba_tin
    bb_tin bd_bin bf_ifu bg_uic bh_vat bj_ifu bo_tin br_cnpj br_cpf bs_tin bw_vat by_tin ca_bn
    ca_gst_hst ca_pst_bc ca_pst_mb ca_pst_sk ca_qst cd_nif ch_uid ch_vat ci_vat cl_tin cm_niu
    cn_tin co_nit cr_tin cv_nif cz_dic de_stn do_rcn ec_ruc eg_tin es_cif et_tin eu_oss_vat eu_vat
    fo_vat fr_siren fr_siret fr_spi gb_vat ge_vat gh_tin gi_tin gn_nif hk_br hr_oib hu_tin ic_nif
    id_npwp il_vat in_gst is_kt is_vat it_cf jp_cn jp_rn jp_trn ke_pin kg_tin kh_tin kr_brn kz_bin
    la_tin li_uid li_vat lk_vat ma_vat md_cf md_vat me_pib mk_vat mr_nif mu_vat mx_rfc my_frp
    my_itn my_sst mz_nuit ng_tin no_vat no_voec np_pan nz_bn nz_gst om_vat pe_ruc ph_tin pl_nip
    pt_nif py_ruc ro_tin rs_pib ru_inn ru_kpp sa_vat sg_gst sg_uen si_tin sm_coe sn_ninea sr_fin
    sv_nit th_vat tj_tin tr_tin tt_bir tt_vat tw_vat tz_vat ua_vat ug_tin us_ein uy_ruc uz_tin
    uz_vat ve_rif vn_tin za_vat zm_tin zw_tin"""
)

# EU VAT numbers after the country prefix (Greece is EL, Northern Ireland XI).
EU_VAT: dict[str, str] = {
    "AT": r"U\d{8}",
    "BE": r"[01]\d{9}",
    "BG": r"\d{9,10}",
    "CY": r"\d{8}[A-Z]",
    "CZ": r"\d{8,10}",
    "DE": r"\d{9}",
    "DK": r"\d{8}",
    "EE": r"\d{9}",
    "EL": r"\d{9}",
    "ES": r"[A-Z0-9]\d{7}[A-Z0-9]",
    "FI": r"\d{8}",
    "FR": r"[A-HJ-NP-Z0-9]{2}\d{9}",
    "HR": r"\d{11}",
    "HU": r"\d{8}",
    "IE": r"\d[A-Z0-9+*]\d{5}[A-W][A-IW]?",
    "IT": r"\d{11}",
    "LT": r"\d{9}|\d{12}",
    "LU": r"\d{8}",
    "LV": r"\d{11}",
    "MT": r"\d{8}",
    "NL": r"\d{9}B\d{2}",
    "PL": r"\d{10}",
    "PT": r"\d{9}",
    "RO": r"\d{2,10}",
    "SE": r"\d{10}01",
    "SI": r"\d{8}",
    "SK": r"\d{10}",
    "XI": r"\d{9}|\d{12}|GD\d{3}|HA\d{3}",
}

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
# Control characters, and line/paragraph separators: never part of a printed address.
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


@dataclass(frozen=True, slots=True)
class TaxId:
    type: str
    value: str


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


# --- tax ids ---------------------------------------------------------------------------------


def _compact(value: str) -> str:
    """Upper case without the separators people type (spaces, dots, dashes, slashes)."""
    return re.sub(r"[\s.\-/]", "", value.upper())


def _abn_checksum_ok(digits: str) -> bool:
    weights = (10, 1, 3, 5, 7, 9, 11, 13, 15, 17, 19)
    numbers = [int(d) for d in digits]
    numbers[0] -= 1
    return sum(w * n for w, n in zip(weights, numbers, strict=True)) % 89 == 0


def _eu_vat(value: str) -> str:
    compact = _compact(value)
    prefix, rest = compact[:2], compact[2:]
    if prefix == "GR":
        raise ValueError("Greek VAT numbers start with EL, not GR (e.g. EL123456789).")
    pattern = EU_VAT.get(prefix)
    if pattern is None:
        raise ValueError(
            "An EU VAT number starts with its country prefix, e.g. DE123456789 or FRAB123456789."
        )
    if not re.fullmatch(pattern, rest):
        raise ValueError(f"Not a valid {prefix} VAT number.")
    return compact


def _gb_vat(value: str) -> str:
    compact = _compact(value)
    if not compact.startswith("GB"):
        compact = "GB" + compact
    if not re.fullmatch(r"GB(\d{9}|\d{12}|GD\d{3}|HA\d{3})", compact):
        raise ValueError("A UK VAT number is GB followed by 9 digits, e.g. GB123456789.")
    return compact


def _us_ein(value: str) -> str:
    compact = _compact(value)
    if not re.fullmatch(r"\d{9}", compact) or compact.startswith("00"):
        raise ValueError("A US EIN has 9 digits, e.g. 12-3456789.")
    return f"{compact[:2]}-{compact[2:]}"


def _au_abn(value: str) -> str:
    compact = _compact(value)
    if not re.fullmatch(r"\d{11}", compact) or not _abn_checksum_ok(compact):
        raise ValueError("An ABN has 11 digits with a valid check digit, e.g. 51824753556.")
    return compact


def _ch(value: str, *, suffix: bool) -> str:
    text = value.upper().strip()
    match = re.fullmatch(r"CHE[\s\-.]?(\d{3})\.?(\d{3})\.?(\d{3})(?:\s*(MWST|TVA|IVA))?", text)
    if not match or bool(match.group(4)) != suffix:
        example = "CHE-123.456.789 MWST" if suffix else "CHE-123.456.789"
        raise ValueError(f"Expected the form {example}.")
    number = f"CHE-{match.group(1)}.{match.group(2)}.{match.group(3)}"
    return f"{number} {match.group(4)}" if suffix else number


def _pattern(
    regex: str, example: str, fmt: Callable[[str], str] | None = None
) -> Callable[[str], str]:
    compiled = re.compile(regex)

    def check(value: str) -> str:
        compact = _compact(value)
        if not compiled.fullmatch(compact):
            raise ValueError(f"Not in the expected format, e.g. {example}.")
        return fmt(compact) if fmt else compact

    return check


TAX_ID_CHECKS: dict[str, Callable[[str], str]] = {
    "eu_vat": _eu_vat,
    "gb_vat": _gb_vat,
    "us_ein": _us_ein,
    "au_abn": _au_abn,
    "ch_vat": lambda v: _ch(v, suffix=True),
    "ch_uid": lambda v: _ch(v, suffix=False),
    "ca_bn": _pattern(r"\d{9}", "123456789"),
    "ca_gst_hst": _pattern(r"\d{9}RT\d{4}", "123456789RT0002"),
    "ca_qst": _pattern(r"\d{10}TQ\d{4}", "1234567890TQ1234"),
    "in_gst": _pattern(r"\d{2}[A-Z]{5}\d{4}[A-Z][1-9A-Z]Z[0-9A-Z]", "22AAAAA0000A1Z5"),
    "nz_gst": _pattern(r"\d{8,9}", "123456789"),
    "au_arn": _pattern(r"\d{12}", "123456789123"),
    "es_cif": _pattern(r"[A-Z]\d{7}[A-Z0-9]", "A12345678"),
    "eu_oss_vat": _pattern(r"EU\d{9}", "EU123456789"),
    "no_vat": _pattern(r"\d{9}MVA", "123456789MVA"),
    "jp_cn": _pattern(r"\d{13}", "1234567891234"),
    "jp_rn": _pattern(r"\d{5}", "12345"),
    "jp_trn": _pattern(r"T\d{13}", "T1234567891234"),
    "kr_brn": _pattern(r"\d{10}", "123-45-67890", lambda c: f"{c[:3]}-{c[3:5]}-{c[5:]}"),
    "br_cnpj": _pattern(
        r"\d{14}", "01.234.456/5432-10", lambda c: f"{c[:2]}.{c[2:5]}.{c[5:8]}/{c[8:12]}-{c[12:]}"
    ),
    "br_cpf": _pattern(r"\d{11}", "123.456.789-87", lambda c: f"{c[:3]}.{c[3:6]}.{c[6:9]}-{c[9:]}"),
    "mx_rfc": _pattern(r"[A-ZÑ&]{3,4}\d{6}[A-Z0-9]{3}", "ABC010203AB9"),
    "sg_uen": _pattern(r"[0-9A-Z]{9,10}", "123456789F"),
    "sg_gst": _pattern(r"[0-9A-Z]{9,10}", "M12345678X"),
    "za_vat": _pattern(r"4\d{9}", "4123456789"),
    "ae_trn": _pattern(r"\d{15}", "123456789012345"),
    "sa_vat": _pattern(r"3\d{13}3", "123456789012345"),
    "hk_br": _pattern(r"\d{8}", "12345678"),
    "il_vat": _pattern(r"\d{9}", "000012345"),
    "tw_vat": _pattern(r"\d{8}", "12345678"),
    "th_vat": _pattern(r"\d{13}", "1234567891234"),
    "pl_nip": _pattern(r"\d{10}", "1234567890"),
    "pt_nif": _pattern(r"\d{9}", "123456789"),
    "fr_siren": _pattern(r"\d{9}", "123456789"),
    "fr_siret": _pattern(r"\d{14}", "12345678901234"),
    "ru_inn": _pattern(r"\d{10}|\d{12}", "1234567891"),
    "ru_kpp": _pattern(r"\d{9}", "123456789"),
    "tr_tin": _pattern(r"\d{10}", "0123456789"),
    "ua_vat": _pattern(r"\d{9}", "123456789"),
}
GENERIC_TAX_ID = re.compile(r"[A-Z0-9][A-Z0-9 .\-/]{1,62}[A-Z0-9]")


def validate_tax_id(type_: str, value: str) -> TaxId:
    """A tax id in its canonical form; DomainErrors name `taxId.type` / `taxId.value`."""
    kind = type_.strip().lower()
    if kind not in TAX_ID_TYPES:
        raise _invalid("taxId.type", "Not a Stripe tax id type (e.g. eu_vat, gb_vat, us_ein).")
    text = CONTROL.sub("", value).strip()
    if not text:
        raise _invalid("taxId.value", "Required.")
    if len(text) > 64:
        raise _invalid("taxId.value", "At most 64 characters.")
    check = TAX_ID_CHECKS.get(kind)
    try:
        if check is not None:
            canonical = check(text)
        else:
            canonical = re.sub(r"\s+", " ", text.upper())
            if not GENERIC_TAX_ID.fullmatch(canonical):
                raise ValueError("Use letters, digits, spaces, dots, dashes or slashes.")
    except ValueError as exc:
        raise _invalid("taxId.value", str(exc)) from None
    return TaxId(kind, canonical)


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
    """Validates and saves the team's billing details, then syncs them to Stripe (best effort).

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
    async with in_transaction() as conn:
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
    await sync_to_stripe(team_id)
    return address


async def sync_to_stripe(team_id: uuid.UUID) -> bool:
    """Pushes the saved details to the team's Stripe customer; False (logged) when that failed.

    A failure never loses the saved address: the row records the error and stays behind
    (`synced_version < version`) for `resync_pending` to try again.
    """
    from app.payments import customers
    from app.payments import gateway as payment_gateway
    from app.payments.stripe import InvalidTaxId

    row = await BillingAddress.get_or_none(team_id=team_id)
    if row is None or row.synced_version >= row.version:
        return True
    version = row.version
    address = Address.of(row)
    note: str | None = None
    try:
        customer_id = await customers.ensure_customer(team_id)
        gateway = payment_gateway.gateway()
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
    from tortoise.expressions import F

    team_ids = (
        await BillingAddress.filter(synced_version__lt=F("version"))
        .limit(limit)
        .values_list("team_id", flat=True)
    )
    synced = 0
    for team_id in team_ids:
        assert isinstance(team_id, uuid.UUID)
        if await sync_to_stripe(team_id):
            synced += 1
    return synced
