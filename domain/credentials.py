"""The unsigned W3C Verifiable Credential 2.0 of a certificate issue: a UNTP 0.7.0
Digital Conformity Credential whose subject is a ``ConformityAttestation`` (issue 13).

Pure: built from the certificate's signed payload v1 (SPEC section 5), the scheme's test
plan and verdicts, and parameters the caller reads from settings (the issuer DID, the
public base URL, the accreditation, the business time zone, the PDF's digest). The proof
(``eddsa-jcs-2022``) and ``credentialStatus`` (two ``BitstringStatusListEntry``) are added
by the caller; docs/credentials.md describes both.

What a verifier may rely on:

- every property is a term the VC 2.0 or UNTP 0.7.0 context defines explicitly (none falls
  into the issuer-dependent vocabulary or a type-scoped ``@vocab``): for example the
  scheme's version is written into the scheme's ``id`` and ``name``, since
  ``ConformityScheme`` defines no ``version`` term;
- ``validFrom`` is the start of the issue day and ``validUntil`` the end of the inclusive
  ``valid_until`` day, both in the business time zone, written as UTC instants;
- no measured value: the builder never receives results, only each item's verdict, and
  each item's performance is a metric with a score (``pass``), never a ``measure``
  (SPEC section 5: the public never sees test data). The limits of each criterion are
  stated, as the scheme publishes them.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Literal
from urllib.parse import quote
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, field_validator

VC_V2_CONTEXT = "https://www.w3.org/ns/credentials/v2"
UNTP_CONTEXT = "https://vocabulary.uncefact.org/untp/0.7.0/context/"
CREDENTIAL_TYPES = ("VerifiableCredential", "DigitalConformityCredential")

#: UN/CEFACT Recommendation 20 common codes of the units our schemes use. A unit without a
#: code falls back to ``ZZ`` ("mutually defined", a Rec 20 code for exactly this case) and
#: the unit as the scheme writes it is stated in the criterion's description and metric name.
REC20_UNITS: Mapping[str, str] = {
    "%": "P1",  # percent
    "% (vol)": "VP",  # percent volume
    "mbar": "MBR",  # millibar
    "Pa": "PAL",  # pascal
    "kPa": "KPA",  # kilopascal
    "s": "SEC",  # second
    "min": "MIN",  # minute
    "l/min": "L2",  # litre per minute
    "mm": "MMT",  # millimetre
    "g": "GRM",  # gram
    "kg": "KGM",  # kilogram
    "N": "NEW",  # newton
    "°C": "CEL",  # degree Celsius
}
REC20_FALLBACK = "ZZ"

AssessmentLevel = Literal[
    "authority-benchmark",
    "authority-mandate",
    "authority-globalmra",
    "authority-peer",
    "authority-extended-mra",
    "scheme-self",
    "scheme-cab",
    "no-endorsement",
]
Verdict = Literal["pass", "fail", "inconclusive"]

_AGGREGATION_TEXT = {
    "single": "one value",
    "all": "every specimen value must meet the limits",
    "mean": "the arithmetic mean of the specimen values must meet the limits",
    "count_within": "at least {min_count} specimen values must lie within the limits",
}
_DECISION_RULE_TEXT = {
    "simple": "Decision rule: simple acceptance (ILAC-G8) — pass when the value lies within "
    "the limits.",
    "guarded": "Decision rule: guarded acceptance (ILAC-G8) — pass when the value ± the "
    "expanded uncertainty U (k=2) lies within the limits.",
}
_SCORE_DEFINITION = {
    "pass": "The item meets its limits under the scheme's decision rule.",
    "fail": "The item does not meet its limits under the scheme's decision rule.",
    "inconclusive": "The uncertainty interval straddles a limit under the decision rule.",
}


class CredentialError(ValueError):
    """The inputs cannot make a truthful credential (a mandatory item did not pass, a
    verdict names an item outside the plan, an identifier is not a URI...)."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PlanItem(_Frozen):
    """One test item of the scheme version's plan, as the scheme publishes it."""

    code: str
    title: str
    method: str | None = None
    unit: str
    lower_limit: Decimal | None = None
    lower_inclusive: bool = True
    upper_limit: Decimal | None = None
    upper_inclusive: bool = True
    mandatory: bool = True
    aggregation: str = "single"
    min_count: int | None = None


class Accreditation(_Frozen):
    """The authority under which the body certifies (UNTP ``authorisation``)."""

    name: str
    authority_id: str
    authority_name: str
    authority_registered_id: str | None = None
    evidence_url: str | None = None
    assessment_level: AssessmentLevel


class ConformityTopic(_Frozen):
    """The UNTP conformity topic of the assessment (a URI and a name)."""

    id: str
    name: str


class CredentialInput(_Frozen):
    """Everything a credential is built from; the payload is the signed payload v1."""

    payload: Mapping[str, Any]
    scheme_name: str
    plan: Sequence[PlanItem] = Field(min_length=1)
    verdicts: Mapping[str, Verdict]
    assessment_date: date
    issuer_did: str
    public_base_url: str
    accreditation: Accreditation
    conformity_topic: ConformityTopic
    pdf_digest_multibase: str = Field(pattern=r"^u[A-Za-z0-9_-]+$")
    #: The public, rate-limited link to this issue's PDF (the bytes the digest is of).
    pdf_url: str = Field(pattern=r"^https?://")
    timezone: str

    @field_validator("issuer_did")
    @classmethod
    def _did(cls, value: str) -> str:
        if not value.startswith("did:"):
            raise ValueError("the issuer must be a DID")
        return value

    @field_validator("public_base_url")
    @classmethod
    def _base(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError("the public base URL must be an http(s) URL")
        return value.rstrip("/")


# --- Pieces --------------------------------------------------------------------------------


def day_start(day: date, timezone: str) -> datetime:
    """The first instant of ``day`` in ``timezone`` (aware, UTC)."""
    return datetime.combine(day, time(0), tzinfo=ZoneInfo(timezone)).astimezone(UTC)


def day_end(day: date, timezone: str) -> datetime:
    """The end of the inclusive ``day`` in ``timezone``: the first instant of the next
    day there (the credential ceases to be valid at that instant)."""
    return day_start(day + timedelta(days=1), timezone)


def instant(value: datetime) -> str:
    """An XML Schema dateTime in UTC with ``Z``, whole seconds."""
    return value.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def digest_multibase(data: bytes) -> str:
    """``digestMultibase`` of ``data`` (VC Data Integrity, resource integrity): multibase
    base64url without padding (prefix ``u``) of the SHA-256 multihash (``0x12 0x20`` +
    digest)."""
    multihash = b"\x12\x20" + hashlib.sha256(data).digest()
    return "u" + base64.urlsafe_b64encode(multihash).rstrip(b"=").decode("ascii")


def digest_multibase_of_sha256(hexdigest: str) -> str:
    """``digest_multibase`` of data whose SHA-256 is ``hexdigest`` (as the record keeps it)."""
    digest = bytes.fromhex(hexdigest)
    if len(digest) != 32:
        raise ValueError("a SHA-256 digest is 32 bytes")
    return "u" + base64.urlsafe_b64encode(b"\x12\x20" + digest).rstrip(b"=").decode("ascii")


def rec20_unit(unit: str) -> str:
    """The Rec 20 code of a unit, or the documented fallback ``ZZ``."""
    return REC20_UNITS.get(unit.strip(), REC20_FALLBACK)


def _segment(text: str) -> str:
    return quote(text.strip().replace(" ", "-"), safe="-._~")


def _number(value: Decimal) -> int | float:
    return int(value) if value == value.to_integral_value() else float(value)


def limits_text(item: PlanItem) -> str:
    """The item's limits in words, e.g. ``≤ 6 % (upper limit, inclusive)``."""
    parts = []
    if item.lower_limit is not None:
        sign = "≥" if item.lower_inclusive else ">"
        kind = "inclusive" if item.lower_inclusive else "exclusive"
        parts.append(f"{sign} {item.lower_limit} {item.unit} (lower limit, {kind})")
    if item.upper_limit is not None:
        sign = "≤" if item.upper_inclusive else "<"
        kind = "inclusive" if item.upper_inclusive else "exclusive"
        parts.append(f"{sign} {item.upper_limit} {item.unit} (upper limit, {kind})")
    return " and ".join(parts) if parts else "no numeric limit"


def _criterion(item: PlanItem, scheme_uri: str) -> dict[str, Any]:
    criterion_uri = f"{scheme_uri}/criteria/{_segment(item.code)}"
    aggregation = _AGGREGATION_TEXT.get(item.aggregation, item.aggregation).format(
        min_count=item.min_count
    )
    unit_code = rec20_unit(item.unit)
    unit_note = "" if unit_code != REC20_FALLBACK else f" (unit {item.unit}: no Rec 20 code)"
    description = f"{item.code}: {limits_text(item)}; {aggregation}"
    if item.method:
        description += f"; method {item.method}"
    description += "; mandatory." if item.mandatory else "; optional."
    required = []
    for which, limit in (("lower", item.lower_limit), ("upper", item.upper_limit)):
        if limit is None:
            continue
        required.append(
            {
                "metric": {
                    "type": ["PerformanceMetric"],
                    "id": f"{criterion_uri}#{which}-limit",
                    "name": f"{item.title} — {which} limit{unit_note}",
                },
                "measure": {"value": _number(limit), "unit": unit_code},
            }
        )
    out: dict[str, Any] = {
        "type": ["Criterion"],
        "id": criterion_uri,
        "name": item.title,
        "description": description,
    }
    if required:
        out["requiredPerformance"] = required
    return out


def _performance(item: PlanItem, scheme_uri: str, verdict: Verdict) -> dict[str, Any]:
    return {
        "metric": {
            "type": ["PerformanceMetric"],
            "id": f"{scheme_uri}/criteria/{_segment(item.code)}#result",
            "name": item.title,
        },
        "score": {"code": verdict, "definition": _SCORE_DEFINITION[verdict]},
    }


def _check_verdicts(plan: Sequence[PlanItem], verdicts: Mapping[str, Verdict]) -> None:
    codes = [item.code for item in plan]
    if len(set(codes)) != len(codes):
        raise CredentialError("the plan names an item twice")
    unknown = sorted(set(verdicts) - set(codes))
    if unknown:
        raise CredentialError(f"verdicts for items outside the plan: {', '.join(unknown)}")
    failing = [i.code for i in plan if i.mandatory and verdicts.get(i.code) != "pass"]
    if failing:
        raise CredentialError(
            f"a certificate needs every mandatory item to pass: {', '.join(failing)}"
        )


# --- The credential ------------------------------------------------------------------------


def credential_id(public_base_url: str, number: str, issue: str) -> str:
    """The credential's URI: ``<base>/credentials/<number>/<issue>``."""
    return f"{public_base_url.rstrip('/')}/credentials/{_segment(number)}/{_segment(issue)}"


def build_credential(data: CredentialInput) -> dict[str, Any]:
    """The unsigned credential (a JSON object ready for ``credentialStatus`` and a proof)."""
    p = data.payload
    if p.get("v") != "1":
        raise CredentialError("only the signed payload v1 is understood")
    _check_verdicts(data.plan, data.verdicts)
    base = data.public_base_url
    number, issue = p["number"], p["issue"]
    cred_id = credential_id(base, number, issue)
    scheme = p["scheme"]
    scheme_uri = f"{base}/schemes/{_segment(scheme['code'])}/{_segment(scheme['version'])}"
    holder, product = p["holder"], p["product"]
    issued_on = date.fromisoformat(p["issued_on"])
    valid_until = date.fromisoformat(p["valid_until"])
    if valid_until < issued_on:
        raise CredentialError("valid_until is before issued_on")

    authority: dict[str, Any] = {
        "type": ["Party"],
        "id": data.accreditation.authority_id,
        "name": data.accreditation.authority_name,
    }
    if data.accreditation.authority_registered_id:
        authority["registeredId"] = data.accreditation.authority_registered_id
    authorisation: dict[str, Any] = {
        "name": data.accreditation.name,
        "issuingAuthority": authority,
    }
    if data.accreditation.evidence_url:
        authorisation["endorsementEvidence"] = {
            "linkURL": data.accreditation.evidence_url,
            "linkName": data.accreditation.name,
        }

    party: dict[str, Any] = {
        "type": ["Party"],
        "id": f"{base}/parties/{_segment(holder['country'])}/{_segment(holder['registration_id'])}",
        "name": holder["name"],
        "registeredId": holder["registration_id"],
        "registrationCountry": {"countryCode": holder["country"]},
    }
    if holder.get("name_ar"):
        party["description"] = f"{holder['name']} — {holder['name_ar']}"

    standards = [
        {
            "type": ["Standard"],
            "id": f"{base}/standards/{_segment(s['code'])}/{_segment(s['edition'])}",
            "name": f"{s['code']}:{s['edition']}",
            "description": f"{s['code']}, edition {s['edition']}",
        }
        for s in p["standards"]
    ]
    conditions = [_DECISION_RULE_TEXT.get(p["decision_rule"], p["decision_rule"])]
    conditions.append(f"Test report digest: {p['test_report_digest']}")
    assessment = {
        "type": ["ConformityAssessment"],
        "id": f"{cred_id}#assessment",
        "name": p["scope"],
        "description": f"{data.scheme_name} — {product['name']} ({product['brand']} "
        f"{product['model']})",
        "assessmentDate": data.assessment_date.isoformat(),
        "assessedProduct": [
            {
                "product": {
                    "type": ["Product"],
                    "id": f"{cred_id}#product",
                    "name": product["name"],
                    "description": f"Brand {product['brand']}, model {product['model']}",
                    "modelNumber": product["model"],
                },
                "idVerifiedByCAB": True,
            }
        ],
        "referenceStandard": standards,
        "assessmentCriteria": [_criterion(item, scheme_uri) for item in data.plan],
        "specifiedCondition": conditions,
        "conformityTopic": [
            {
                "type": ["ConformityTopic"],
                "id": data.conformity_topic.id,
                "name": data.conformity_topic.name,
            }
        ],
        "assessedPerformance": [
            _performance(item, scheme_uri, data.verdicts[item.code])
            for item in data.plan
            if item.code in data.verdicts
        ],
        "conformance": True,
    }
    subject = {
        "type": ["ConformityAttestation"],
        "id": f"{cred_id}#attestation",
        "name": f"Certificate of conformity {number}, issue {issue}",
        "description": p["scope"],
        "assessorLevel": "3rdParty",
        "assessmentLevel": data.accreditation.assessment_level,
        "attestationType": "certification",
        "issuedToParty": party,
        "authorisation": [authorisation],
        "referenceScheme": {
            "type": ["ConformityScheme"],
            "id": scheme_uri,
            "name": f"{data.scheme_name} ({scheme['code']}, version {scheme['version']})",
        },
        "conformityCertificate": {
            "linkURL": data.pdf_url,
            "linkName": f"Certificate {number} (PDF)",
            "mediaType": "application/pdf",
            "digestMultibase": data.pdf_digest_multibase,
        },
        "conformityAssessment": [assessment],
    }
    return {
        "@context": [VC_V2_CONTEXT, UNTP_CONTEXT],
        "type": list(CREDENTIAL_TYPES),
        "id": cred_id,
        "name": f"Digital Conformity Credential {number}, issue {issue}",
        "issuer": {
            "type": ["CredentialIssuer"],
            "id": data.issuer_did,
            "name": p["issuer"]["name"],
        },
        "validFrom": instant(day_start(issued_on, data.timezone)),
        "validUntil": instant(day_end(valid_until, data.timezone)),
        "credentialSubject": subject,
    }


def plan_items(test_items: Sequence[Mapping[str, Any]], language: str = "en") -> list[PlanItem]:
    """Plan items from a scheme version's ``test_items`` (``mutabaqa/reference.json``
    shape); the title in ``language`` when the item has one, its main title otherwise."""
    fields = set(PlanItem.model_fields) - {"title"}
    return [
        PlanItem(
            title=(item.get("titles") or {}).get(language) or item["title"],
            **{k: v for k, v in item.items() if k in fields},
        )
        for item in test_items
    ]
