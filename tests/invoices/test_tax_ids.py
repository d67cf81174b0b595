"""Tax ids: every checked type takes a real id, refuses one with a wrong check digit, and
normalises what people type (spaces, dots, dashes, lower case)."""

from __future__ import annotations

import pytest

from app.invoices.tax_ids import CHECK_DIGIT_MISMATCH, TAX_ID_CHECKS, TaxId, validate_tax_id
from app.kit.errors import DomainError, ErrorCode

# (type, a real id in canonical form, the same id with its check digit changed)
CHECK_DIGITS: list[tuple[str, str, str]] = [
    ("eu_vat", "DE136695976", "DE136695977"),
    ("eu_vat", "EL094259216", "EL094259217"),
    ("eu_vat", "FR40303265045", "FR41303265045"),
    ("eu_vat", "FRK7399859412", "FRK7399859413"),
    ("eu_vat", "NL004495445B01", "NL004495446B01"),
    ("eu_vat", "ATU13585627", "ATU13585628"),
    ("eu_vat", "BE0403019261", "BE0403019262"),
    ("eu_vat", "ESB58378431", "ESB58378432"),
    ("eu_vat", "ESQ2818015F", "ESQ2818015G"),
    ("eu_vat", "IE6433435F", "IE6433435E"),
    ("eu_vat", "IT00743110157", "IT00743110158"),
    ("eu_vat", "PL8567346215", "PL8567346216"),
    ("eu_vat", "XI980780684", "XI980780685"),
    ("gb_vat", "GB980780684", "GB980780685"),
    ("au_abn", "51824753556", "51824753557"),
    ("ch_vat", "CHE-107.787.577 IVA", "CHE-107.787.578 IVA"),
    ("ch_uid", "CHE-107.787.577", "CHE-107.787.578"),
    ("ca_bn", "123456782", "123456783"),
    ("ca_gst_hst", "123456782RT0002", "123456783RT0002"),
    ("in_gst", "27AAPFU0939F1ZV", "27AAPFU0939F1ZW"),
    ("nz_gst", "136410132", "136410133"),
    ("es_cif", "A13585625", "A13585626"),
    ("no_vat", "995525828MVA", "995525829MVA"),
    ("jp_cn", "5835678256246", "6835678256246"),  # the check digit comes first
    ("jp_trn", "T5835678256246", "T6835678256246"),
    ("br_cnpj", "16.727.230/0001-97", "16.727.230/0001-98"),
    ("br_cpf", "390.533.447-05", "390.533.447-06"),
    ("sg_uen", "197401143C", "197401143D"),
    ("il_vat", "516179157", "516179158"),
    ("tw_vat", "00501503", "00501504"),
    ("th_vat", "0994000617721", "0994000617722"),
    ("pl_nip", "8567346215", "8567346216"),
    ("pt_nif", "501964843", "501964844"),
    ("fr_siren", "552008443", "552008444"),
    ("fr_siret", "73282932000074", "73282932000075"),
    ("ru_inn", "7707083893", "7707083894"),
    ("tr_tin", "4540536920", "4540536921"),
]

# Checked types without a check digit stdnum verifies: a real id, and one whose parts
# cannot be (an unassigned prefix, a date that does not exist, a zero serial).
NO_CHECK_DIGIT: list[tuple[str, str, str]] = [
    ("us_ein", "12-3456789", "07-3456789"),  # 07 is not an IRS campus prefix
    ("mx_rfc", "GODE561231GR8", "GODE561331GR8"),  # month 13
    ("kr_brn", "123-45-67890", "123-45-00000"),  # serial 0000
]

# Types stdnum does not know keep Stripe's pattern: one that fits, one that does not.
PATTERN_ONLY: list[tuple[str, str, str]] = [
    ("ca_qst", "1234567890TQ1234", "1234567890TX1234"),
    ("au_arn", "123456789123", "12345678912"),
    ("eu_oss_vat", "EU123456789", "EX123456789"),
    ("jp_rn", "12345", "1234"),
    ("sg_gst", "M12345678X", "M1234567"),
    ("za_vat", "4123456789", "5123456789"),
    ("ae_trn", "123456789012345", "12345678901234"),
    ("sa_vat", "310175397400003", "310175397400004"),
    ("hk_br", "12345678", "1234567"),
    ("ru_kpp", "123456789", "12345678"),
    ("ua_vat", "123456789", "12345678"),
]

# (type, as typed, canonical form)
NORMALISED: list[tuple[str, str, str]] = [
    ("eu_vat", "de 136.695.976", "DE136695976"),
    ("eu_vat", "nl 0044.95.445.b01", "NL004495445B01"),
    ("eu_vat", "fr k7 399 859 412", "FRK7399859412"),
    ("gb_vat", "980 7806 84", "GB980780684"),
    ("gb_vat", "gb 980.7806.84", "GB980780684"),
    ("us_ein", "12 3456789", "12-3456789"),
    ("au_abn", "51 824 753 556", "51824753556"),
    ("ch_vat", "che 107.787.577 mwst", "CHE-107.787.577 MWST"),
    ("ch_uid", "che107787577", "CHE-107.787.577"),
    ("ca_gst_hst", "123 456 782 rt 0002", "123456782RT0002"),
    ("in_gst", "27aapfu0939f1zv", "27AAPFU0939F1ZV"),
    ("nz_gst", "136-410-132", "136410132"),
    ("no_vat", "995 525 828 mva", "995525828MVA"),
    ("jp_trn", "t 5835678256246", "T5835678256246"),
    ("kr_brn", "1234567890", "123-45-67890"),
    ("br_cnpj", "16727230000197", "16.727.230/0001-97"),
    ("br_cpf", "39053344705", "390.533.447-05"),
    ("sg_uen", "197401143c", "197401143C"),
    ("EU_VAT", " de136695976 ", "DE136695976"),
]


def refusal(kind: str, value: str) -> DomainError:
    with pytest.raises(DomainError) as caught:
        validate_tax_id(kind, value)
    return caught.value


@pytest.mark.parametrize(("kind", "valid", "wrong"), CHECK_DIGITS)
def test_a_real_id_passes_and_a_wrong_check_digit_is_refused(
    kind: str, valid: str, wrong: str
) -> None:
    assert validate_tax_id(kind, valid) == TaxId(kind, valid)
    error = refusal(kind, wrong)
    assert (error.code, error.field, error.message) == (
        ErrorCode.INVALID_INPUT,
        "taxId.value",
        CHECK_DIGIT_MISMATCH,
    )


@pytest.mark.parametrize(("kind", "valid", "invalid"), NO_CHECK_DIGIT + PATTERN_ONLY)
def test_a_real_id_passes_and_a_malformed_one_is_refused(
    kind: str, valid: str, invalid: str
) -> None:
    assert validate_tax_id(kind, valid) == TaxId(kind, valid)
    error = refusal(kind, invalid)
    assert (error.code, error.field) == (ErrorCode.INVALID_INPUT, "taxId.value")
    assert "e.g." in error.message  # the refusal shows the expected form


def test_every_checked_type_is_covered_here() -> None:
    covered = {kind for kind, _, _ in CHECK_DIGITS + NO_CHECK_DIGIT + PATTERN_ONLY}
    assert covered == set(TAX_ID_CHECKS)


@pytest.mark.parametrize(("kind", "typed", "canonical"), NORMALISED)
def test_spaces_dots_dashes_and_case_are_normalised(kind: str, typed: str, canonical: str) -> None:
    assert validate_tax_id(kind, typed) == TaxId(kind.lower(), canonical)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("GR094259216", "Greek VAT numbers start with EL"),
        ("US123456789", "starts with its country prefix"),
        ("DE13669597", "Not a valid DE VAT number."),
    ],
)
def test_eu_vat_says_what_is_wrong_with_the_prefix_or_the_format(value: str, message: str) -> None:
    error = refusal("eu_vat", value)
    assert error.field == "taxId.value"
    assert message in error.message


def test_a_vat_number_needs_its_suffix_and_a_uid_must_not_have_one() -> None:
    assert refusal("ch_vat", "CHE-107.787.577").field == "taxId.value"
    assert refusal("ch_uid", "CHE-107.787.577 MWST").field == "taxId.value"
