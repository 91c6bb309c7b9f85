"""Checks a verifier can make on a credential with the shipped contexts and schema, offline.

- :func:`stray_terms`: expands the credential with W3C's undefined-terms context appended
  and lists every property or type whose IRI is not in a vocabulary the contexts define
  explicitly. The rule (docs/credentials.md): an IRI is accepted when it is in the VC
  vocabulary (``https://www.w3.org/2018/credentials#``), the status list vocabulary
  (``https://www.w3.org/ns/credentials/status#``), the security vocabulary
  (``https://w3id.org/security#``), schema.org (``https://schema.org/``) or the flat UNTP
  vocabulary (``https://vocabulary.uncefact.org/untp/<term>``, one path segment, no
  ``#``). Everything else is refused, in particular the issuer-dependent vocabulary
  (``https://www.w3.org/ns/credentials/undefined-term#``) that undefined terms fall into,
  and the type-scoped ``@vocab`` namespaces of the UNTP context
  (``https://vocabulary.uncefact.org/untp/Product#brand`` and the like), which catch any
  term a UNTP class does not define.
- :func:`w3c_dcc_schema`: the UNTP 0.7.0 DCC schema with its two departures from the W3C
  Recommendations undone (``credentialStatus`` is a list of entries, and
  ``statusListIndex`` a base-10 string, per Bitstring Status List v1.0).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from typing import Any

from mutabaqa.jsonld import DCC_SCHEMA, UNDEFINED_TERMS_CONTEXT, expand, load_json

ALLOWED_PREFIXES = (
    "https://www.w3.org/2018/credentials#",
    "https://www.w3.org/ns/credentials/status#",
    "https://w3id.org/security#",
    "https://schema.org/",
)
#: Single terms the VC 2.0 context maps outside those vocabularies, by explicit definition:
#: a ``DataIntegrityProof``'s ``created`` and ``expires`` are Dublin Core terms.
ALLOWED_TERMS = frozenset({"http://purl.org/dc/terms/created", "http://purl.org/dc/terms/expires"})
_UNTP_FLAT = re.compile(r"https://vocabulary\.uncefact\.org/untp/[A-Za-z][A-Za-z0-9]*")


def allowed_iri(iri: str) -> bool:
    """Whether a property or type IRI is in a vocabulary the contexts define explicitly."""
    return (
        iri.startswith(ALLOWED_PREFIXES) or iri in ALLOWED_TERMS or bool(_UNTP_FLAT.fullmatch(iri))
    )


def _walk(node: Any) -> Iterator[str]:
    if isinstance(node, list):
        for item in node:
            yield from _walk(item)
    elif isinstance(node, dict):
        for key, value in node.items():
            if key == "@type" and "@value" not in node:
                yield from (value if isinstance(value, list) else [value])
            elif not key.startswith("@"):
                yield key
            if key not in ("@value", "@id", "@type"):
                yield from _walk(value)


def expanded_iris(expanded: Any) -> set[str]:
    """Every property IRI and node type IRI of an expanded JSON-LD document."""
    return set(_walk(expanded))


def stray_terms(credential: dict[str, Any]) -> list[str]:
    """The IRIs of ``credential`` outside the accepted vocabularies (empty when clean)."""
    expanded = expand(credential, extra_contexts=(UNDEFINED_TERMS_CONTEXT,))
    return sorted(iri for iri in expanded_iris(expanded) if not allowed_iri(iri))


def w3c_dcc_schema() -> dict[str, Any]:
    """The shipped DCC schema, patched to follow W3C where UNTP 0.7.0 departs from it."""
    schema: dict[str, Any] = copy.deepcopy(load_json(DCC_SCHEMA))
    entry = schema["$defs"]["BitstringStatusListEntry"]
    entry["properties"]["statusListIndex"] = {
        "type": "string",
        "pattern": "^(0|[1-9][0-9]*)$",
        "description": "Bitstring Status List v1.0: an integer >= 0 expressed as a base-10 string.",
    }
    schema["properties"]["credentialStatus"] = {
        "oneOf": [
            {"$ref": "#/$defs/BitstringStatusListEntry"},
            {
                "type": "array",
                "minItems": 1,
                "items": {"$ref": "#/$defs/BitstringStatusListEntry"},
            },
        ]
    }
    return schema
