"""Tax ids: Stripe's types, and each value's canonical form with its check digits verified.

Pure: no database, no Stripe. Check digits and formats come from python-stdnum wherever it
knows the type; the few types it does not know keep a pattern of their own.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from stdnum import luhn
from stdnum.au import abn
from stdnum.br import cnpj, cpf
from stdnum.ca import bn
from stdnum.ch import uid
from stdnum.ch import vat as ch_vat
from stdnum.es import cif
from stdnum.eu import vat as eu_vat
from stdnum.exceptions import InvalidChecksum, ValidationError
from stdnum.fr import siren, siret
from stdnum.gb import vat as gb_vat
from stdnum.in_ import gstin
from stdnum.jp import cn
from stdnum.kr import brn
from stdnum.mx import rfc
from stdnum.no import mva
from stdnum.nz import ird
from stdnum.pl import nip
from stdnum.pt import nif
from stdnum.ru import inn
from stdnum.sg import uen
from stdnum.th import moa, pin
from stdnum.tr import vkn
from stdnum.tw import ubn
from stdnum.us import ein

from app.kit.errors import DomainError, ErrorCode


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


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

# The EU VAT prefixes stdnum checks; Greece's is EL (GR is refused with a hint), XI is
# Northern Ireland.
EU_VAT_PREFIXES = frozenset(state.upper() for state in eu_vat.MEMBER_STATES) - {"GR"} | {"EL"}

# Control characters, and line/paragraph separators: never part of a printed address.
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
GENERIC_TAX_ID = re.compile(r"[A-Z0-9][A-Z0-9 .\-/]{1,62}[A-Z0-9]")
MAX_LENGTH = 64
CHECK_DIGIT_MISMATCH = "The check digit does not match: look for a mistyped character."

# A compact value (upper case, no separators) to its canonical form, or a ValueError whose
# text is the message shown to the client.
Check = Callable[[str], str]


@dataclass(frozen=True, slots=True)
class TaxId:
    type: str
    value: str


def _invalid(field: str, message: str) -> DomainError:
    return DomainError(ErrorCode.INVALID_INPUT, message, field)


def _compact(value: str) -> str:
    """Upper case without the separators people type (spaces, dots, dashes, slashes)."""
    return re.sub(r"[\s.\-/]", "", value.upper())


def _stdnum(validate: Callable[[str], str], format_message: str) -> Check:
    """Runs a stdnum validator, turning its errors into our messages."""

    def check(compact: str) -> str:
        try:
            return validate(compact)
        except InvalidChecksum:
            raise ValueError(CHECK_DIGIT_MISMATCH) from None
        except ValidationError:
            raise ValueError(format_message) from None

    return check


def _rule(
    example: str,
    validate: Callable[[str], str] | None = None,
    *,
    pattern: str | None = None,
    fmt: Callable[[str], str] | None = None,
    message: str | None = None,
) -> Check:
    """A check: Stripe's `pattern` where it is narrower than stdnum's (or stdnum does not
    know the type), then stdnum's `validate`, then the canonical `fmt`."""
    compiled = re.compile(pattern) if pattern else None
    message = message or f"Not in the expected format, e.g. {example}."
    checked = _stdnum(validate, message) if validate else None

    def check(compact: str) -> str:
        if compiled is not None and not compiled.fullmatch(compact):
            raise ValueError(message)
        value = checked(compact) if checked else compact
        return fmt(value) if fmt else value

    return check


def _eu_vat(compact: str) -> str:
    prefix = compact[:2]
    if prefix == "GR":
        raise ValueError("Greek VAT numbers start with EL, not GR (e.g. EL094259216).")
    if prefix not in EU_VAT_PREFIXES:
        raise ValueError(
            "An EU VAT number starts with its country prefix, e.g. DE136695976 or FRK7399859412."
        )
    return _stdnum(eu_vat.validate, f"Not a valid {prefix} VAT number.")(compact)


def _gb_vat(compact: str) -> str:
    message = "A UK VAT number is GB followed by 9 digits, e.g. GB980780684."
    number = compact.removeprefix("GB")
    return "GB" + _stdnum(gb_vat.validate, message)(number)


def _ch(compact: str, *, suffix: bool) -> str:
    if suffix:
        message = "Expected the form CHE-107.787.577 MWST (or TVA, IVA)."
        return ch_vat.format(_stdnum(ch_vat.validate, message)(compact))
    message = "Expected the form CHE-107.787.577."
    return uid.format(_stdnum(uid.validate, message)(compact))


def _jp_trn(compact: str) -> str:
    return "T" + cn.validate(compact[1:])


def _th_vat(compact: str) -> str:
    # A company's number starts with 0, a person's never does; stdnum's own dispatch (th.tin)
    # reports every failure as a bad format, this keeps a wrong check digit apart.
    return moa.validate(compact) if compact.startswith("0") else pin.validate(compact)


def _mx_rfc(compact: str) -> str:
    # stdnum leaves the check digit unverified by default: the SAT has issued RFCs whose
    # check digit is wrong, and those are still the holders' real numbers.
    return rfc.validate(compact)


TAX_ID_CHECKS: dict[str, Check] = {
    "eu_vat": _eu_vat,
    "gb_vat": _gb_vat,
    "us_ein": _rule(
        "12-3456789",
        ein.validate,
        fmt=ein.format,
        message="A US EIN has 9 digits and an IRS prefix, e.g. 12-3456789.",
    ),
    "au_abn": _rule("51824753556", abn.validate, message="An ABN has 11 digits, e.g. 51824753556."),
    "ch_vat": lambda c: _ch(c, suffix=True),
    "ch_uid": lambda c: _ch(c, suffix=False),
    "ca_bn": _rule("123456782", bn.validate, pattern=r"\d{9}"),
    "ca_gst_hst": _rule("123456782RT0002", bn.validate, pattern=r"\d{9}RT\d{4}"),
    "ca_qst": _rule("1234567890TQ1234", pattern=r"\d{10}TQ\d{4}"),
    "in_gst": _rule("27AAPFU0939F1ZV", gstin.validate),
    "nz_gst": _rule("136410132", ird.validate),
    "au_arn": _rule("123456789123", pattern=r"\d{12}"),
    "es_cif": _rule("A13585625", cif.validate),
    "eu_oss_vat": _rule("EU123456789", pattern=r"EU\d{9}"),
    "no_vat": _rule("995525828MVA", mva.validate, pattern=r"\d{9}MVA"),
    "jp_cn": _rule("5835678256246", cn.validate),
    "jp_rn": _rule("12345", pattern=r"\d{5}"),
    "jp_trn": _rule("T5835678256246", _jp_trn, pattern=r"T\d{13}"),
    # stdnum checks the BRN's parts (office, type, serial) but not its check digit.
    "kr_brn": _rule("123-45-67890", brn.validate, fmt=brn.format),
    "br_cnpj": _rule("16.727.230/0001-97", cnpj.validate, fmt=cnpj.format),
    "br_cpf": _rule("390.533.447-05", cpf.validate, fmt=cpf.format),
    "mx_rfc": _rule("GODE561231GR8", _mx_rfc),
    "sg_uen": _rule("197401143C", uen.validate),
    "sg_gst": _rule("M12345678X", pattern=r"[0-9A-Z]{9,10}"),
    "za_vat": _rule("4123456789", pattern=r"4\d{9}"),
    "ae_trn": _rule("123456789012345", pattern=r"\d{15}"),
    "sa_vat": _rule("310175397400003", pattern=r"3\d{13}3"),
    "hk_br": _rule("12345678", pattern=r"\d{8}"),
    # Companies' and individuals' VAT numbers (company number, identity number) share
    # one check digit: Luhn over the 9 digits.
    "il_vat": _rule("516179157", luhn.validate, pattern=r"\d{9}"),
    "tw_vat": _rule("00501503", ubn.validate),
    "th_vat": _rule("0994000617721", _th_vat),
    "pl_nip": _rule("8567346215", nip.validate),
    "pt_nif": _rule("501964843", nif.validate),
    "fr_siren": _rule("552008443", siren.validate),
    "fr_siret": _rule("73282932000074", siret.validate),
    "ru_inn": _rule("7707083893", inn.validate),
    "ru_kpp": _rule("123456789", pattern=r"\d{9}"),
    "tr_tin": _rule("4540536920", vkn.validate),
    "ua_vat": _rule("123456789", pattern=r"\d{9}"),
}


def validate_tax_id(type_: str, value: str) -> TaxId:
    """A tax id in its canonical form; DomainErrors name `taxId.type` / `taxId.value`."""
    kind = type_.strip().lower()
    if kind not in TAX_ID_TYPES:
        raise _invalid("taxId.type", "Not a Stripe tax id type (e.g. eu_vat, gb_vat, us_ein).")
    text = CONTROL.sub("", value).strip()
    if not text:
        raise _invalid("taxId.value", "Required.")
    if len(text) > MAX_LENGTH:
        raise _invalid("taxId.value", f"At most {MAX_LENGTH} characters.")
    check = TAX_ID_CHECKS.get(kind)
    try:
        if check is not None:
            canonical = check(_compact(text))
        else:
            canonical = re.sub(r"\s+", " ", text.upper())
            if not GENERIC_TAX_ID.fullmatch(canonical):
                raise ValueError("Use letters, digits, spaces, dots, dashes or slashes.")
    except ValueError as exc:
        raise _invalid("taxId.value", str(exc)) from None
    return TaxId(kind, canonical)
