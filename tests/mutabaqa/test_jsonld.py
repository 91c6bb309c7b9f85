"""The shipped JSON-LD contexts and schema, and the offline document loader: what a
verifier relies on is that the files are the published ones (digests recomputed here) and
that nothing is ever fetched."""

from __future__ import annotations

import hashlib
import json
import socket
import tomllib
from pathlib import Path
from typing import Any

import pytest

from mutabaqa import jsonld
from mutabaqa.jsonld.checks import allowed_iri, stray_terms

ROOT = Path(__file__).resolve().parents[2]


def content_digest(data: bytes) -> str:
    """uncefact/tests-untp's digest: SHA-256 of ``JSON.stringify(JSON.parse(text))``."""
    compact = json.dumps(json.loads(data), separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(compact.encode("utf-8")).hexdigest()


@pytest.mark.parametrize("entry", jsonld.manifest()["artefacts"], ids=lambda e: e["file"])
def test_shipped_files_match_the_manifest(entry: dict[str, Any]) -> None:
    data = jsonld.shipped_bytes(entry["file"])
    assert hashlib.sha256(data).hexdigest() == entry["sha256"]
    assert content_digest(data) == entry["content_sha256"]
    if entry["upstream_manifest_sha256"] is not None:
        # The digest uncefact/tests-untp's manifest publishes for the same URL.
        assert entry["content_sha256"] == entry["upstream_manifest_sha256"]
    assert entry["source"].startswith("https://github.com/")
    assert len(entry["commit"]) == 40


def test_the_manifest_covers_the_contexts_a_credential_names() -> None:
    assert jsonld.shipped_urls() >= {jsonld.VC_V2_CONTEXT, jsonld.UNTP_CONTEXT, jsonld.DCC_SCHEMA}


def test_the_files_are_package_data() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "jsonld/*.json" in config["tool"]["setuptools"]["package-data"]["mutabaqa"]
    listed = {e["file"] for e in jsonld.manifest()["artefacts"]}
    on_disk = {p.name for p in (ROOT / "mutabaqa" / "jsonld").glob("*.json")} - {"manifest.json"}
    assert listed == on_disk


def test_vc_v2_context_defines_data_integrity_and_status_list_terms() -> None:
    # No separate Data Integrity context is needed: VC 2.0's base context defines them.
    terms = jsonld.document_loader(jsonld.VC_V2_CONTEXT)["document"]["@context"]
    for term in ("DataIntegrityProof", "BitstringStatusListEntry", "VerifiableCredential"):
        assert term in terms
    scoped = terms["VerifiableCredential"]["@context"]
    assert {"proof", "credentialStatus", "validFrom", "validUntil"} <= set(scoped)
    assert {"cryptosuite", "proofValue", "verificationMethod"} <= set(
        terms["DataIntegrityProof"]["@context"]
    )
    assert "@vocab" not in terms  # VC 2.0 final: undefined terms are not silently mapped


def test_loader_serves_contexts_as_json_ld() -> None:
    answer = jsonld.document_loader(jsonld.UNTP_CONTEXT)
    assert answer["documentUrl"] == jsonld.UNTP_CONTEXT
    assert "ConformityAttestation" in answer["document"]["@context"]
    answer["document"]["@context"].clear()  # a copy: the shipped document is untouched
    assert (
        "ConformityAttestation"
        in jsonld.document_loader(jsonld.UNTP_CONTEXT)["document"]["@context"]
    )


@pytest.mark.parametrize(
    "url",
    [
        "https://www.w3.org/2018/credentials/v1",
        "https://example.org/context.jsonld",
        jsonld.DCC_SCHEMA,  # a schema, not a context
        "https://www.w3.org/ns/credentials/v2/",  # near miss
    ],
)
def test_loader_refuses_anything_not_shipped(url: str) -> None:
    with pytest.raises(jsonld.OfflineDocumentError, match="never fetched"):
        jsonld.document_loader(url)


def test_expansion_with_an_unknown_context_fails_without_touching_the_network(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_network(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the network was used")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    document = {"@context": ["https://example.org/unknown"], "name": "x"}
    with pytest.raises(Exception) as caught:
        jsonld.expand(document)
    chain = []
    error: BaseException | None = caught.value
    while error is not None:
        chain.append(error)
        error = error.__cause__ or error.__context__ or getattr(error, "cause", None)
    assert any(isinstance(e, jsonld.OfflineDocumentError) for e in chain), chain
    assert not any(isinstance(e, AssertionError) for e in chain)


def test_allowed_iri_rule() -> None:
    assert allowed_iri("https://www.w3.org/2018/credentials#validFrom")
    assert allowed_iri("https://schema.org/name")
    assert allowed_iri("https://w3id.org/security#digestMultibase")
    assert allowed_iri("https://vocabulary.uncefact.org/untp/assessmentDate")
    assert not allowed_iri("https://vocabulary.uncefact.org/untp/Product#brand")
    assert not allowed_iri("https://www.w3.org/ns/credentials/undefined-term#brand")
    assert not allowed_iri("https://vocabulary.uncefact.org/untp/0.7.0/x")


def test_stray_terms_catches_undefined_and_type_scoped_terms() -> None:
    document = {
        "@context": [jsonld.VC_V2_CONTEXT, jsonld.UNTP_CONTEXT],
        "type": ["VerifiableCredential", "DigitalConformityCredential"],
        "id": "https://example.org/c/1",
        "issuer": "did:web:example.org",
        "validFrom": "2026-01-01T00:00:00Z",
        "credentialSubject": {
            "type": ["Product"],
            "id": "https://example.org/p/1",
            "name": "Mask",
            "brand": "Atlas",  # Product has no such term: Product's @vocab catches it
        },
        "colour": "blue",  # undefined anywhere: DigitalConformityCredential's @vocab
    }
    assert stray_terms(document) == [
        "https://vocabulary.uncefact.org/untp/DigitalConformityCredential#colour",
        "https://vocabulary.uncefact.org/untp/Product#brand",
    ]
    del document["colour"]
    del document["credentialSubject"]["brand"]  # type: ignore[attr-defined]
    assert stray_terms(document) == []
