"""The states and kinds the rules speak of (stored as text; values never change)."""

from __future__ import annotations

from enum import StrEnum


class RequestStatus(StrEnum):
    DRAFT = "draft"
    SUBMITTED = "submitted"
    APPLICATION_REVIEW = "application_review"
    INFO_REQUESTED = "info_requested"
    DECLINED = "declined"
    AWAITING_SAMPLE = "awaiting_sample"
    TESTING = "testing"
    RESULTS_SUBMITTED = "results_submitted"
    EVALUATED = "evaluated"
    CERTIFIED = "certified"
    VERIFIED = "verified"
    REFUSED = "refused"
    UNDER_APPEAL = "under_appeal"
    WITHDRAWN = "withdrawn"
    LAPSED = "lapsed"


class RequestKind(StrEnum):
    CERTIFICATION = "certification"
    SAFETY_VERIFICATION = "safety_verification"
    SURVEILLANCE = "surveillance"


class FilePurpose(StrEnum):
    DOCUMENT = "document"  # dossier file uploaded by the manufacturer
    EVIDENCE = "evidence"  # test evidence uploaded by the laboratory


class SampleStatus(StrEnum):
    RECEIVED = "received"
    REJECTED = "rejected"


class ResultVerdict(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"


class CertificateStatus(StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"
    WITHDRAWN = "withdrawn"
    EXPIRED = "expired"
    SUPERSEDED = "superseded"
    TERMINATED = "terminated"


class DecisionRule(StrEnum):
    """How a measured value and its uncertainty are judged against a limit (ILAC-G8)."""

    SIMPLE = "simple"
    GUARDED = "guarded"


class Aggregation(StrEnum):
    """How several specimen values of one test item count (SPEC section 3)."""

    SINGLE = "single"
    ALL = "all"
    MEAN = "mean"
    COUNT_WITHIN = "count_within"
