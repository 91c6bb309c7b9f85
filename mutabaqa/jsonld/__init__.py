"""JSON-LD contexts and JSON Schemas shipped with Mutabaqa, and an offline document loader.

A verifiable credential names its contexts by URL (``https://www.w3.org/ns/credentials/v2``,
the UNTP 0.7.0 context). Fetching them at run time would make issuing and checking depend on
third-party hosts (and let whoever answers change the meaning of our credentials), so the
exact files are shipped in this package, each with its source, commit and digests in
``manifest.json``, and :func:`document_loader` serves them to ``pyld``. Any other URL is
refused with :class:`OfflineDocumentError`: the loader never goes to the network.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from importlib import resources
from typing import Any

VC_V2_CONTEXT = "https://www.w3.org/ns/credentials/v2"
UNTP_CONTEXT = "https://vocabulary.uncefact.org/untp/0.7.0/context/"
#: W3C's context that maps every otherwise undefined term into the issuer-dependent
#: vocabulary ``https://www.w3.org/ns/credentials/undefined-term#``; used by checks only.
UNDEFINED_TERMS_CONTEXT = "https://www.w3.org/ns/credentials/undefined-terms/v2"
DCC_SCHEMA = "https://untp.unece.org/artefacts/schema/v0.7.0/dcc/ConformityCredential.json"


class OfflineDocumentError(LookupError):
    """A JSON-LD document was asked for that is not shipped; nothing is fetched instead."""


def _read(name: str) -> bytes:
    return resources.files(__name__).joinpath(name).read_bytes()


@cache
def manifest() -> dict[str, Any]:
    """The parsed ``manifest.json``: one entry per shipped file (url, file, source,
    commit, sha256 of the bytes, content_sha256 in uncefact/tests-untp's rule)."""
    data: dict[str, Any] = json.loads(_read("manifest.json"))
    return data


def shipped_bytes(file: str) -> bytes:
    """The bytes of a shipped file named in the manifest."""
    if file not in {entry["file"] for entry in manifest()["artefacts"]}:
        raise OfflineDocumentError(f"{file!r} is not a shipped JSON-LD artefact")
    return _read(file)


@cache
def _documents() -> dict[str, Any]:
    return {entry["url"]: json.loads(_read(entry["file"])) for entry in manifest()["artefacts"]}


def shipped_urls() -> frozenset[str]:
    """Every URL the loader answers."""
    return frozenset(_documents())


def load_json(url: str) -> Any:
    """A deep copy of the shipped document for ``url`` (contexts and schemas alike)."""
    try:
        return copy.deepcopy(_documents()[url])
    except KeyError:
        raise OfflineDocumentError(
            f"JSON-LD document {url!r} is not shipped with Mutabaqa and is never fetched; "
            f"shipped: {', '.join(sorted(_documents()))}"
        ) from None


def document_loader(url: str, options: dict[str, Any] | None = None) -> dict[str, Any]:
    """A ``pyld`` document loader answering from the shipped files only.

    Contexts (``kind: context``) are served as ``application/ld+json``; schemas are not
    contexts and a request for one as a context is refused like any unknown URL."""
    kinds = {entry["url"]: entry["kind"] for entry in manifest()["artefacts"]}
    if kinds.get(url) != "context":
        raise OfflineDocumentError(
            f"JSON-LD context {url!r} is not shipped with Mutabaqa and is never fetched; "
            f"shipped contexts: {', '.join(sorted(u for u, k in kinds.items() if k == 'context'))}"
        )
    return {
        "contextUrl": None,
        "documentUrl": url,
        "contentType": "application/ld+json",
        "document": load_json(url),
    }


def expand(document: dict[str, Any], *, extra_contexts: tuple[str, ...] = ()) -> list[Any]:
    """The JSON-LD expansion of ``document`` through :func:`document_loader`.

    ``extra_contexts`` are appended to the document's ``@context`` before expanding (the
    checks use it to add W3C's undefined-terms context and so see every term the
    document's own contexts leave undefined)."""
    from pyld import jsonld  # imported here: only checks and tests expand documents

    doc = copy.deepcopy(document)
    if extra_contexts:
        context = doc.get("@context", [])
        doc["@context"] = [*(context if isinstance(context, list) else [context])]
        doc["@context"].extend(extra_contexts)
    expanded: list[Any] = jsonld.expand(doc, {"documentLoader": document_loader})
    return expanded
