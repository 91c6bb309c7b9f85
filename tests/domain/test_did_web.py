"""did:web from the public base URL and back (W3C CCG did:web method specification)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.did_web import did_web_document_url, did_web_from_base_url


@pytest.mark.parametrize(
    ("base_url", "did"),
    [
        ("https://cert.example.ma", "did:web:cert.example.ma"),
        ("https://cert.example.ma/", "did:web:cert.example.ma"),
        ("https://Cert.Example.MA", "did:web:cert.example.ma"),
        ("http://localhost:8000", "did:web:localhost%3A8000"),
        ("http://127.0.0.1:8000", "did:web:localhost%3A8000"),  # the embedded default
        ("https://x.ma/a/b", "did:web:x.ma:a:b"),
        ("https://x.ma/a/b/", "did:web:x.ma:a:b"),
        ("https://x.ma:8443/certificates", "did:web:x.ma%3A8443:certificates"),
        ("https://x.ma/~cert/%C3%A9", "did:web:x.ma:%7Ecert:%C3%A9"),
    ],
)
def test_the_did_of_a_base_url(base_url: str, did: str) -> None:
    assert did_web_from_base_url(base_url) == did


@pytest.mark.parametrize(
    ("did", "url"),
    [
        ("did:web:cert.example.ma", "https://cert.example.ma/.well-known/did.json"),
        ("did:web:localhost%3A8000", "http://localhost:8000/.well-known/did.json"),
        ("did:web:x.ma:a:b", "https://x.ma/a/b/did.json"),
        ("did:web:x.ma%3A8443:certificates", "https://x.ma:8443/certificates/did.json"),
        ("did:web:127.0.0.1%3A8000", "http://127.0.0.1:8000/.well-known/did.json"),
    ],
)
def test_the_document_url_of_a_did(did: str, url: str) -> None:
    assert did_web_document_url(did) == url


def test_the_round_trip_of_a_base_url_with_a_path() -> None:
    did = did_web_from_base_url("https://x.ma/a/b")
    assert did == "did:web:x.ma:a:b"
    assert did_web_document_url(did) == "https://x.ma/a/b/did.json"


@pytest.mark.parametrize(
    "base_url",
    [
        "http://cert.example.ma",  # http is for localhost only
        "https://10.0.0.5",  # did:web forbids IP addresses
        "https://[2001:db8::1]",
        "ftp://cert.example.ma",
        "https://user:pw@cert.example.ma",
        "https://cert.example.ma/?a=1",
        "https://cert.example.ma/#top",
        "https://cert.example.ma/a//b",
        "https://cert.example.ma/a:b",
        "https://cert.example.ma/a/../b",  # dot segments name another place once normalised
        "https://مطابقة.ma",  # IDNs in punycode
        "cert.example.ma",
    ],
)
def test_base_urls_without_a_did_web_are_refused(base_url: str) -> None:
    with pytest.raises(ValueError):
        did_web_from_base_url(base_url)


@pytest.mark.parametrize(
    "did",
    [
        "did:key:z6MkrJVnaZkeFzdQyMZu1cgjg7k1pZZ6pvBQ7XJPt4swbTQ2",
        "did:web:",
        "did:web:x.ma#key",
        "did:web:x.ma/a",
        "did:web:10.0.0.5",
        "did:web:x.ma%3Ahttp",
        "did:web:x.ma::a",
    ],
)
def test_what_is_not_a_did_web_has_no_document_url(did: str) -> None:
    with pytest.raises(ValueError):
        did_web_document_url(did)


_LABEL = st.from_regex(r"[a-z0-9](?:[a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)
_SEGMENT = st.from_regex(r"[A-Za-z0-9._-]{1,8}", fullmatch=True).filter(
    lambda segment: segment not in (".", "..")
)


@given(
    labels=st.lists(_LABEL, min_size=1, max_size=4).filter(
        lambda labels: not all(label.isdigit() for label in labels)  # not an IP address
    ),
    port=st.one_of(st.none(), st.integers(1, 65535)),
    path=st.lists(_SEGMENT, max_size=3),
)
def test_any_https_base_url_resolves_back_to_itself(
    labels: list[str], port: int | None, path: list[str]
) -> None:
    host = ".".join(labels)
    authority = host if port is None else f"{host}:{port}"
    base = f"https://{authority}" + "".join(f"/{segment}" for segment in path)
    did = did_web_from_base_url(base)
    assert ":" not in did.removeprefix("did:web:").split(":")[0].replace("%3A", "")
    where = "/.well-known/did.json" if not path else "/did.json"
    assert did_web_document_url(did) == base + where
