"""GS1 identifiers and GS1 Digital Link URIs, as pure functions.

- A GTIN (GS1 Application Identifier 01) is 8, 12, 13 or 14 digits whose last digit is
  the GS1 mod-10 check digit; it is stored and published in its 14-digit form (left
  zero-padded), which GS1 Digital Link requires in a URI path.
- A lot or batch number (AI 10) is 1 to 20 characters of GS1 AI encodable character
  set 82; in a Digital Link URI path every character outside the URI unreserved set is
  percent-encoded (GS1 Digital Link 1.x), e.g. ``A/1`` → ``A%2F1``.
- ``digital_link(base, gtin, lot)`` is ``<base>/01/<gtin14>`` or
  ``<base>/01/<gtin14>/10/<lot>``.

Errors are ``ValueError`` whose message says what is wrong, for the person who typed it.
"""

from __future__ import annotations

import re
from urllib.parse import quote, unquote

#: The lengths of GTIN-8, GTIN-12 (UPC-A), GTIN-13 (EAN-13) and GTIN-14.
GTIN_LENGTHS = (8, 12, 13, 14)
LOT_MAX_LENGTH = 20
#: GS1 AI encodable character set 82 (GS1 General Specifications, figure 7.11-1).
CS82 = frozenset(
    "!\"%&'()*+,-./0123456789:;<=>?ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"
)
_DIGITS = re.compile(r"^[0-9]+$")


def check_digit(digits: str) -> int:
    """The GS1 mod-10 check digit of ``digits`` (every digit of the key but the last):
    weights 3, 1, 3, … from the rightmost digit leftwards."""
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(digits)))
    return (10 - total % 10) % 10


def normalize_gtin(value: str) -> str:
    """The 14-digit form of a valid GTIN-8/12/13/14; ``ValueError`` says why not."""
    gtin = value.strip()
    if not gtin:
        raise ValueError("a GTIN is 8, 12, 13 or 14 digits; it is empty")
    if not _DIGITS.match(gtin):
        raise ValueError("a GTIN has digits only (no spaces, letters or dashes)")
    if len(gtin) not in GTIN_LENGTHS:
        raise ValueError(f"a GTIN is 8, 12, 13 or 14 digits long, not {len(gtin)}")
    expected = check_digit(gtin[:-1])
    if int(gtin[-1]) != expected:
        raise ValueError(
            f"the GTIN's check digit is wrong: it ends in {gtin[-1]}, "
            f"the digits before it call for {expected}; check the number on the label"
        )
    return gtin.zfill(14)


def is_gtin14(value: str) -> bool:
    """True when ``value`` is a valid GTIN already in its 14-digit form."""
    try:
        return len(value) == 14 and normalize_gtin(value) == value
    except ValueError:
        return False


def validate_lot(value: str) -> str:
    """A lot or batch number (AI 10) as given, once checked: 1-20 characters of CS82."""
    if not value:
        raise ValueError("a lot number has 1 to 20 characters; it is empty")
    if len(value) > LOT_MAX_LENGTH:
        raise ValueError(f"a lot number has at most 20 characters, not {len(value)}")
    wrong = sorted({c for c in value if c not in CS82})
    if wrong:
        shown = " ".join(repr(c) for c in wrong)
        raise ValueError(
            f"a lot number uses letters A-Z a-z, digits and !\"%&'()*+,-./:;<=>?_ only; not {shown}"
        )
    return value


def encode_lot(lot: str) -> str:
    """``lot`` percent-encoded for a Digital Link path segment: every character outside
    the URI unreserved set (letters, digits, ``-``, ``.``, ``_``) becomes ``%XX``."""
    return quote(validate_lot(lot), safe="")


def decode_lot(segment: str) -> str:
    """A lot path segment back to the lot number (``ValueError`` if it is not one)."""
    return validate_lot(unquote(segment))


def gtin_path(gtin: str, lot: str | None = None) -> str:
    """``/01/<gtin14>`` or ``/01/<gtin14>/10/<lot>``, the Digital Link's path."""
    path = f"/01/{normalize_gtin(gtin)}"
    if lot is not None:
        path += f"/10/{encode_lot(lot)}"
    return path


def digital_link(base: str, gtin: str, lot: str | None = None) -> str:
    """The GS1 Digital Link URI of ``gtin`` (and ``lot``) under ``base``."""
    return base.rstrip("/") + gtin_path(gtin, lot)


# --- the resolver's answer: an RFC 9264 linkset ---------------------------------------------

LINKSET_MEDIA_TYPE = "application/linkset+json"
#: The GS1 Web Vocabulary's link type for certification information.
CERTIFICATION_INFO = "https://gs1.org/voc/certificationInfo"
CREDENTIAL_MEDIA_TYPE = "application/vc"
#: The verification page's languages, in the order the linkset lists them.
PAGE_LANGUAGES = ("ar", "fr", "en")


def certification_links(base: str, number: str) -> list[dict[str, object]]:
    """One certificate's targets: its verifiable credential, then its verification page in
    each language."""
    root = base.rstrip("/")
    links: list[dict[str, object]] = [
        {"href": f"{root}/credentials/{number}", "type": CREDENTIAL_MEDIA_TYPE, "title": number}
    ]
    links += [
        {"href": f"{root}/verify/{number}?lang={lang}", "type": "text/html", "hreflang": [lang]}
        for lang in PAGE_LANGUAGES
    ]
    return links


def linkset(anchor: str, base: str, numbers: list[str]) -> dict[str, object]:
    """The RFC 9264 JSON linkset of ``anchor`` (a Digital Link URI) naming the
    certificates ``numbers`` (in that order) under ``certificationInfo``."""
    targets = [link for number in numbers for link in certification_links(base, number)]
    return {"linkset": [{"anchor": anchor, CERTIFICATION_INFO: targets}]}


def linkset_header(anchor: str) -> str:
    """The ``Link`` header that points a client at the linkset of ``anchor``."""
    return f'<{anchor}?linkType=all>; rel="linkset"; type="{LINKSET_MEDIA_TYPE}"'
