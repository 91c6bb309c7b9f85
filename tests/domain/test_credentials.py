"""The unsigned Digital Conformity Credential (issue 13), checked as a verifier would:
against the shipped UNTP 0.7.0 DCC schema, expanded with pyld through the offline loader,
every term in an explicitly defined vocabulary, and no measured value anywhere."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import re
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import jsonschema
import pytest

from domain.credentials import (
    REC20_FALLBACK,
    Accreditation,
    ConformityTopic,
    CredentialError,
    CredentialInput,
    build_credential,
    day_end,
    digest_multibase,
    plan_items,
)
from mutabaqa import jsonld
from mutabaqa.jsonld.checks import stray_terms, w3c_dcc_schema

ROOT = Path(__file__).resolve().parents[2]
VECTOR = json.loads((ROOT / "tests" / "vectors" / "certificate-v1.json").read_text("utf-8"))
REFERENCE = json.loads((ROOT / "mutabaqa" / "reference.json").read_text("utf-8"))
BASE = "https://certification.example.ma"
PDF = b"%PDF-1.7 stand-in for the certificate's PDF"
#: The public route of an issue's PDF is not built yet (issue 13): any http(s) URL here.
PDF_URL = f"{BASE}/verify/MA-CTTH-2026-000001/0/certificate.pdf"

#: The test results behind the vector's certificate (FFP2 plan, every item passing under
#: the guarded rule): specimen values and expanded uncertainties U. None of these may
#: appear in the credential (SPEC section 5).
RESULTS: dict[str, dict[str, list[str]]] = {
    "PEN-NACL": {"values": ["1.37", "1.52", "1.19"], "U": ["0.21"]},
    "PEN-PARAFFIN": {"values": ["2.43", "2.17", "2.61"], "U": ["0.33"]},
    "TIL-IND": {"values": ["3.17", "4.29", "5.83", "2.96"], "U": ["0.47"]},
    "TIL-MEAN": {"values": ["3.91", "4.13"], "U": ["0.39"]},
    "RES-IN-30": {"values": ["0.43", "0.47", "0.51"], "U": ["0.04"]},
    "RES-IN-95": {"values": ["1.63", "1.71", "1.58"], "U": ["0.12"]},
    "RES-EX-160": {"values": ["1.87", "1.93", "2.04"], "U": ["0.13"]},
    "CO2": {"values": ["0.62", "0.58"], "U": ["0.07"]},
    "FLAME": {"values": ["1.3", "0.9"], "U": ["0.2"]},
}


def scheme(code: str) -> dict[str, Any]:
    return next(s for s in REFERENCE["schemes"] if s["code"] == code)


def make_input(scheme_code: str = "FFP2-NM-EN-149", **changes: Any) -> CredentialInput:
    found = scheme(scheme_code)
    payload = copy.deepcopy(VECTOR["payload"])
    payload["scheme"] = {"code": found["code"], "version": str(found["version"])}
    payload["decision_rule"] = found["decision_rule"]
    plan = plan_items(found["test_items"])
    fields: dict[str, Any] = {
        "payload": payload,
        "scheme_name": found["title_en"],
        "plan": plan,
        "verdicts": {item.code: "pass" for item in plan},
        "assessment_date": date(2026, 11, 20),
        "issuer_did": "did:web:certification.example.ma",
        "public_base_url": BASE + "/",
        "accreditation": Accreditation(
            name="ISO/IEC 17065 accreditation no. CP-01 (demonstration)",
            authority_id="https://accreditation.example.ma",
            authority_name="Service marocain d'accréditation (demonstration)",
            assessment_level="authority-globalmra",
        ),
        "conformity_topic": ConformityTopic(
            id="https://vocabulary.uncefact.org/untp/ConformityTopic#safety",
            name="Product safety",
        ),
        "pdf_digest_multibase": digest_multibase(PDF),
        "pdf_url": PDF_URL,
        "timezone": "Africa/Casablanca",
    }
    fields.update(changes)
    return CredentialInput(**fields)


@pytest.fixture(scope="module")
def credential() -> dict[str, Any]:
    return build_credential(make_input())


def validator(schema: dict[str, Any]) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())


def error_paths(schema: dict[str, Any], document: dict[str, Any]) -> set[tuple[Any, ...]]:
    return {tuple(e.absolute_path) for e in validator(schema).iter_errors(document)}


def status_entries() -> list[dict[str, str]]:
    """The two entries the caller adds (W3C Bitstring Status List v1.0 shape)."""
    return [
        {
            "id": f"{BASE}/status-lists/{purpose}/1#{index}",
            "type": "BitstringStatusListEntry",
            "statusPurpose": purpose,
            "statusListIndex": index,
            "statusListCredential": f"{BASE}/status-lists/{purpose}/1",
        }
        for purpose, index in (("suspension", "94567"), ("revocation", "2048"))
    ]


# --- shape -------------------------------------------------------------------------------------


def test_envelope(credential: dict[str, Any]) -> None:
    assert credential["@context"] == [jsonld.VC_V2_CONTEXT, jsonld.UNTP_CONTEXT]
    assert credential["type"] == ["VerifiableCredential", "DigitalConformityCredential"]
    assert credential["id"] == f"{BASE}/credentials/MA-CTTH-2026-000001/0"
    assert credential["issuer"]["id"] == "did:web:certification.example.ma"
    assert credential["issuer"]["name"] == VECTOR["payload"]["issuer"]["name"]
    assert "proof" not in credential and "credentialStatus" not in credential


def test_validity_is_the_certificate_days_in_the_business_time_zone(
    credential: dict[str, Any],
) -> None:
    # Issued 2026-11-29, valid until 2029-11-28 inclusive; Casablanca is UTC+1 then.
    assert credential["validFrom"] == "2026-11-28T23:00:00Z"
    assert credential["validUntil"] == "2029-11-28T23:00:00Z"
    utc = build_credential(make_input(timezone="UTC"))
    assert (utc["validFrom"], utc["validUntil"]) == ("2026-11-29T00:00:00Z", "2029-11-29T00:00:00Z")
    assert day_end(date(2029, 11, 28), "Asia/Tokyo").isoformat() == "2029-11-28T15:00:00+00:00"


def test_subject_is_a_third_party_certification(credential: dict[str, Any]) -> None:
    subject = credential["credentialSubject"]
    assert subject["type"] == ["ConformityAttestation"]
    assert subject["attestationType"] == "certification"
    assert subject["assessorLevel"] == "3rdParty"
    assert subject["assessmentLevel"] == "authority-globalmra"
    assert subject["referenceScheme"]["id"] == f"{BASE}/schemes/FFP2-NM-EN-149/1"
    assert "version 1" in subject["referenceScheme"]["name"]
    assert subject["issuedToParty"]["registeredId"] == "001234567000089"
    assert (
        subject["authorisation"][0]["issuingAuthority"]["id"] == "https://accreditation.example.ma"
    )
    pdf = subject["conformityCertificate"]
    assert pdf["linkURL"] == PDF_URL
    assert pdf["digestMultibase"].startswith("u")
    assert pdf["mediaType"] == "application/pdf"


def test_one_assessment_with_a_criterion_and_a_pass_per_item(credential: dict[str, Any]) -> None:
    (assessment,) = credential["credentialSubject"]["conformityAssessment"]
    items = scheme("FFP2-NM-EN-149")["test_items"]
    assert assessment["conformance"] is True
    assert assessment["assessmentDate"] == "2026-11-20"
    assert assessment["assessedProduct"][0]["product"]["modelNumber"] == "AT-200"
    assert [s["name"] for s in assessment["referenceStandard"]] == ["NM EN 149:2001+A1:2009"]
    criteria = assessment["assessmentCriteria"]
    assert [c["id"].rsplit("/", 1)[1] for c in criteria] == [i["code"] for i in items]
    by_code = {c["id"].rsplit("/", 1)[1]: c for c in criteria}
    assert "≤ 6 % (upper limit, inclusive)" in by_code["PEN-NACL"]["description"]
    assert "at least 46 specimen values" in by_code["TIL-IND"]["description"]
    assert by_code["PEN-NACL"]["requiredPerformance"] == [
        {
            "metric": {
                "type": ["PerformanceMetric"],
                "id": f"{BASE}/schemes/FFP2-NM-EN-149/1/criteria/PEN-NACL#upper-limit",
                "name": "Filter penetration, sodium chloride aerosol at 95 l/min — upper limit",
            },
            "measure": {"value": 6, "unit": "P1"},
        }
    ]
    assert any("guarded" in c for c in assessment["specifiedCondition"])
    performance = assessment["assessedPerformance"]
    assert len(performance) == len(items)
    for entry in performance:
        assert set(entry) == {"metric", "score"}  # never a measure
        assert entry["score"]["code"] == "pass"


def test_units_without_a_rec20_code_fall_back_to_zz() -> None:
    made = build_credential(make_input("MEDMASK-IIR-NM-EN-14683"))
    criteria = made["credentialSubject"]["conformityAssessment"][0]["assessmentCriteria"]
    units = {
        c["id"].rsplit("/", 1)[1]: [r["measure"]["unit"] for r in c["requiredPerformance"]]
        for c in criteria
    }
    assert units == {"BFE": ["P1"], "DP": [REC20_FALLBACK], "SPLASH": ["KPA"], "BIOBURDEN": ["ZZ"]}
    dp = next(c for c in criteria if c["id"].endswith("/DP"))
    assert "(unit Pa/cm²: no Rec 20 code)" in dp["requiredPerformance"][0]["metric"]["name"]
    assert "Pa/cm²" in dp["description"]


def test_pdf_digest_is_a_sha256_multihash_in_base64url_multibase(
    credential: dict[str, Any],
) -> None:
    value = credential["credentialSubject"]["conformityCertificate"]["digestMultibase"]
    raw = base64.urlsafe_b64decode(value[1:] + "=" * (-len(value[1:]) % 4))
    assert value[0] == "u" and raw[:2] == b"\x12\x20"
    assert raw[2:] == hashlib.sha256(PDF).digest()
    # SHA-256 of the empty string, 0x1220 prefixed, base64url without padding.
    assert digest_multibase(b"") == "uEiDjsMRCmPwcFJr79MiZb7kkJ65B5GSbk0yklZkbeFK4VQ"
    with pytest.raises(ValueError):
        make_input(pdf_digest_multibase="sha256:" + hashlib.sha256(PDF).hexdigest())


def walk_ids(node: Any) -> Iterator[str]:
    if isinstance(node, list):
        for item in node:
            yield from walk_ids(item)
    elif isinstance(node, dict):
        for key, value in node.items():
            if key == "id":
                yield value
            yield from walk_ids(value)


def test_every_id_is_a_uri(credential: dict[str, Any]) -> None:
    ids = list(walk_ids(credential))
    assert len(ids) > 20
    for value in ids:
        parsed = urlparse(value)
        assert parsed.scheme in {"https", "did"}, value
        assert " " not in value, value


def test_refuses_a_credential_a_grant_could_not_make() -> None:
    with pytest.raises(CredentialError, match="PEN-NACL"):
        build_credential(make_input(verdicts={"PEN-NACL": "inconclusive"}))
    with pytest.raises(CredentialError, match="outside the plan"):
        verdicts = {i["code"]: "pass" for i in scheme("FFP2-NM-EN-149")["test_items"]}
        build_credential(make_input(verdicts={**verdicts, "NOPE": "pass"}))
    with pytest.raises(ValueError, match="DID"):
        make_input(issuer_did="https://certification.example.ma")


# --- the UNTP 0.7.0 DCC schema -----------------------------------------------------------------


@pytest.mark.parametrize("scheme_code", ["FFP2-NM-EN-149", "MEDMASK-IIR-NM-EN-14683"])
def test_validates_against_the_shipped_dcc_schema(scheme_code: str) -> None:
    made = build_credential(make_input(scheme_code))
    assert error_paths(jsonld.load_json(jsonld.DCC_SCHEMA), made) == set()


def test_the_schema_formats_are_checked() -> None:
    # "uri" and "date-time" need jsonschema's format extras; without them they pass silently.
    checker = jsonschema.FormatChecker()
    assert not checker.conforms("not a uri", "uri")
    assert not checker.conforms("2029-11-28 23:00", "date-time")


def test_schema_validation_can_fail(credential: dict[str, Any]) -> None:
    broken = copy.deepcopy(credential)
    broken["credentialSubject"]["assessorLevel"] = "third-party"
    broken["validUntil"] = "2029-11-28"
    broken["credentialSubject"]["issuedToParty"]["id"] = "001234567000089 MA"
    del broken["credentialSubject"]["conformityAssessment"][0]["assessedPerformance"][0]["score"][
        "code"
    ]
    assert error_paths(jsonld.load_json(jsonld.DCC_SCHEMA), broken) == {
        ("validUntil",),
        ("credentialSubject", "issuedToParty", "id"),
        ("credentialSubject", "assessorLevel"),
        ("credentialSubject", "conformityAssessment", 0, "assessedPerformance", 0, "score"),
    }


def test_w3c_status_entries_differ_from_untp_exactly_where_documented(
    credential: dict[str, Any],
) -> None:
    """UNTP 0.7.0 types ``statusListIndex`` as an integer and allows one entry; W3C wants
    a base-10 string, and we carry two entries. Only those paths differ."""
    issued = {**credential, "credentialStatus": status_entries()}
    untp = jsonld.load_json(jsonld.DCC_SCHEMA)
    assert error_paths(untp, issued) == {("credentialStatus",)}
    one = {**credential, "credentialStatus": status_entries()[0]}
    assert error_paths(untp, one) == {("credentialStatus", "statusListIndex")}
    assert error_paths(w3c_dcc_schema(), issued) == set()
    assert error_paths(w3c_dcc_schema(), one) == set()
    numeric = {**credential, "credentialStatus": [{**status_entries()[0], "statusListIndex": 7}]}
    assert error_paths(w3c_dcc_schema(), numeric) != set()


# --- JSON-LD -----------------------------------------------------------------------------------


def test_expands_offline_with_every_term_defined(credential: dict[str, Any]) -> None:
    expanded = jsonld.expand(credential)
    (node,) = expanded
    assert node["@id"] == credential["id"]
    assert "https://vocabulary.uncefact.org/untp/DigitalConformityCredential" in node["@type"]
    assert stray_terms(credential) == []
    issued = {**credential, "credentialStatus": status_entries()}
    assert stray_terms(issued) == []


def test_a_term_outside_the_contexts_is_caught(credential: dict[str, Any]) -> None:
    leaky = copy.deepcopy(credential)
    leaky["credentialSubject"]["referenceScheme"]["version"] = "1"
    leaky["credentialSubject"]["conformityAssessment"][0]["assessedProduct"][0]["product"][
        "brand"
    ] = "Atlas"
    assert stray_terms(leaky) == [
        "https://vocabulary.uncefact.org/untp/ConformityScheme#version",
        "https://vocabulary.uncefact.org/untp/Product#brand",
    ]


# --- no measured values ------------------------------------------------------------------------


def measured_values_in(document: dict[str, Any]) -> list[str]:
    """Each measured value or uncertainty of RESULTS found in the document, as a JSON
    number or as a number inside any string."""
    numbers: list[Decimal] = []
    strings: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                strings.append(key)
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)
        elif isinstance(node, bool):
            return
        elif isinstance(node, int | float):
            numbers.append(Decimal(str(node)))
        elif isinstance(node, str):
            strings.append(node)

    walk(document)
    found = []
    for result in RESULTS.values():
        for value in result["values"] + result["U"]:
            pattern = re.compile(rf"(?<![\d.]){re.escape(value)}(?![\d])")
            if Decimal(value) in numbers or any(pattern.search(s) for s in strings):
                found.append(value)
    return found


def test_no_measured_value_appears(credential: dict[str, Any]) -> None:
    plan_codes = {i["code"] for i in scheme("FFP2-NM-EN-149")["test_items"]}
    assert set(RESULTS) == plan_codes
    assert measured_values_in(credential) == []


def test_the_measured_value_check_can_fail(credential: dict[str, Any]) -> None:
    leaky = copy.deepcopy(credential)
    performance = leaky["credentialSubject"]["conformityAssessment"][0]["assessedPerformance"]
    performance[0]["measure"] = {"value": 1.37, "unit": "P1"}
    performance[1]["score"]["definition"] = "mean 2.43 %"
    assert measured_values_in(leaky) == ["1.37", "2.43"]
