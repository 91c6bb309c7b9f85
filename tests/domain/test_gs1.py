"""GTIN check digits, their 14-digit form, lot numbers and GS1 Digital Link URIs."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.gs1 import (
    CS82,
    check_digit,
    decode_lot,
    digital_link,
    encode_lot,
    is_gtin14,
    linkset,
    linkset_header,
    normalize_gtin,
    validate_lot,
)

#: Published examples: EAN-8, UPC-A, EAN-13 and the GTIN-14 of GS1's Digital Link examples.
KNOWN = {
    "96385074": "00000096385074",
    "036000291452": "00036000291452",
    "4006381333931": "04006381333931",
    "09506000134352": "09506000134352",
    "9506000134352": "09506000134352",
}


@pytest.mark.parametrize(("given_gtin", "gtin14"), sorted(KNOWN.items()))
def test_known_gtins_are_valid_and_padded_to_14_digits(given_gtin: str, gtin14: str) -> None:
    assert normalize_gtin(given_gtin) == gtin14
    assert is_gtin14(gtin14)


@pytest.mark.parametrize("gtin", sorted(KNOWN))
def test_every_other_check_digit_is_refused(gtin: str) -> None:
    for digit in "0123456789":
        if digit == gtin[-1]:
            continue
        with pytest.raises(ValueError, match="check digit is wrong"):
            normalize_gtin(gtin[:-1] + digit)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "empty"),
        ("4006381-333931", "digits only"),
        ("40063813339３1", "digits only"),  # a full-width digit is not an ASCII digit
        ("40063813339", "not 11"),
        ("123456789012345", "not 15"),
    ],
)
def test_malformed_gtins_say_what_is_wrong(value: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        normalize_gtin(value)


def test_a_14_digit_form_is_not_a_shorter_one() -> None:
    assert not is_gtin14("4006381333931")
    assert not is_gtin14("04006381333932")


@given(st.text(alphabet="0123456789", min_size=13, max_size=13))
def test_any_13_digits_with_their_check_digit_make_a_gtin(body: str) -> None:
    gtin = body + str(check_digit(body))
    assert normalize_gtin(gtin) == gtin
    wrong = body + str((check_digit(body) + 1) % 10)
    with pytest.raises(ValueError):
        normalize_gtin(wrong)


@given(
    st.sampled_from([7, 11, 12, 13]).flatmap(
        lambda n: st.text("0123456789", min_size=n, max_size=n)
    )
)
def test_zero_padding_keeps_the_check_digit(body: str) -> None:
    gtin = body + str(check_digit(body))
    assert normalize_gtin(gtin) == gtin.zfill(14)


def test_lots_use_character_set_82_up_to_20_characters() -> None:
    assert validate_lot("LOT-2026/A") == "LOT-2026/A"
    assert validate_lot("x" * 20) == "x" * 20
    with pytest.raises(ValueError, match="at most 20"):
        validate_lot("x" * 21)
    with pytest.raises(ValueError, match="empty"):
        validate_lot("")
    with pytest.raises(ValueError, match="' '"):
        validate_lot("LOT 1")
    with pytest.raises(ValueError, match="'é'"):
        validate_lot("café")
    with pytest.raises(ValueError, match="'#'"):
        validate_lot("A#1")


def test_digital_links() -> None:
    base = "https://certs.example.ma/"
    assert digital_link(base, "4006381333931") == "https://certs.example.ma/01/04006381333931"
    assert (
        digital_link(base, "09506000134352", "ABC123")
        == "https://certs.example.ma/01/09506000134352/10/ABC123"
    )
    # GS1 Digital Link: characters outside the URI unreserved set are percent-encoded.
    assert encode_lot("A/1") == "A%2F1"
    assert encode_lot("!\"%&'()*+,-./:;<=>?_") == (
        "%21%22%25%26%27%28%29%2A%2B%2C-.%2F%3A%3B%3C%3D%3E%3F_"
    )


@given(st.text(alphabet=sorted(CS82), min_size=1, max_size=20))
def test_a_lot_survives_encoding(lot: str) -> None:
    encoded = encode_lot(lot)
    assert "/" not in encoded and "?" not in encoded and "#" not in encoded
    assert decode_lot(encoded) == lot


def test_the_linkset_names_each_certificates_credential_and_pages() -> None:
    base = "https://certs.example.ma"
    anchor = f"{base}/01/04006381333931"

    def page(number: str, lang: str) -> dict[str, object]:
        return {
            "href": f"{base}/verify/{number}?lang={lang}",
            "type": "text/html",
            "hreflang": [lang],
        }

    def credential(number: str) -> dict[str, object]:
        return {"href": f"{base}/credentials/{number}", "type": "application/vc", "title": number}

    assert linkset(anchor, base + "/", ["MA-1", "MA-2"]) == {
        "linkset": [
            {
                "anchor": anchor,
                "https://gs1.org/voc/certificationInfo": [
                    credential("MA-1"),
                    page("MA-1", "ar"),
                    page("MA-1", "fr"),
                    page("MA-1", "en"),
                    credential("MA-2"),
                    page("MA-2", "ar"),
                    page("MA-2", "fr"),
                    page("MA-2", "en"),
                ],
            }
        ]
    }
    assert linkset_header(anchor) == (
        f'<{anchor}?linkType=all>; rel="linkset"; type="application/linkset+json"'
    )
