"""Canonical JSON (RFC 8785) and the digests computed over it.

The audit chain, idempotency digests, frozen test reports and signed certificate payloads
are hashed over canonical bytes, so a digest never depends on key order or on how a JSON
library prints numbers.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import rfc8785

from domain.certificate_rules import to_canonical_value


def canonical_json(document: Mapping[str, Any]) -> bytes:
    """The RFC 8785 canonical JSON of ``to_canonical_value(document)``."""
    return rfc8785.dumps(to_canonical_value(document))


def report_digest(report: Mapping[str, Any]) -> str:
    """``"sha256:<hex>"`` of the report's RFC 8785 canonical JSON.

    The report is first brought to its canonical form by ``to_canonical_value`` (decimals
    and dates become strings; plain ints and floats are refused), so the digest does not
    depend on key order, and equal reports rebuilt later from stored strings digest
    alike. For a document already made of strings this is exactly
    ``sha256(rfc8785.dumps(report))``.
    """
    return "sha256:" + hashlib.sha256(canonical_json(report)).hexdigest()


def action_digest(action: str, body: Mapping[str, Any]) -> str:
    """The hex SHA-256 of ``{"action": …, "body": …}`` in RFC 8785 form: what an
    ``Idempotency-Key`` is recorded with, so a repeat with another body is told apart."""
    return hashlib.sha256(rfc8785.dumps({"action": action, "body": dict(body)})).hexdigest()
