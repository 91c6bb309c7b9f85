"""``GET /.well-known/mutabaqa-keys.json``: the public keys that sign certificates; and
``GET /.well-known/did.json``: the same keys as the deployment's ``did:web`` document.

Public and permanent, at the root (not under ``/api/v1``): offline verifiers fetch them
(``mutabaqa verify``; any W3C verifier resolving the credentials' issuer). The active key
comes first; retired keys stay listed so that the certificates and credentials they signed
can still be verified. Served from public-key files only: the API process holds no private
key.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response
from fastapi.responses import JSONResponse

from api.context import AppContext
from api.deps import get_context
from api.problems import Problem
from api.ratelimit import public_rate_limit
from domain.did_web import WELL_KNOWN_DID_PATH, did_web_from_base_url
from models.certificates import KeySet
from mutabaqa.did_document import did_document

KEYS_PATH = "/.well-known/mutabaqa-keys.json"
DID_PATH = WELL_KNOWN_DID_PATH
#: DID v1.0 section 6.2 registers ``application/did+json``; the document is also plain JSON.
DID_MEDIA_TYPE = "application/did+json"

router = APIRouter(tags=["verification"])

ContextDep = Annotated[AppContext, Depends(get_context)]


@router.get(KEYS_PATH, response_model=KeySet)
def signing_keys(ctx: ContextDep, response: Response) -> KeySet:
    """The certificate signing keys as a JWK set (Ed25519, ``kid`` = RFC 7638 thumbprint)."""
    response.headers["Cache-Control"] = "public, max-age=300"
    return ctx.public_keys.key_set()


@router.get(
    DID_PATH,
    response_class=JSONResponse,
    dependencies=[Depends(public_rate_limit)],
    responses={
        200: {
            "description": "The DID document of the deployment's did:web.",
            "content": {DID_MEDIA_TYPE: {}},
        },
        404: {"description": "The public base URL gives no did:web (e.g. http, an IP)."},
        429: {"description": "Too many requests from this address; see `Retry-After`."},
    },
)
def did_web_document(ctx: ContextDep) -> JSONResponse:
    """The ``did:web`` document derived from ``MUTABAQA_PUBLIC_BASE_URL``: every signing key
    (active, then retired) as a ``Multikey`` ``<did>#<kid>``, all under
    ``assertionMethod`` (docs/credentials.md)."""
    try:
        did = did_web_from_base_url(ctx.settings.public_base_url)
    except ValueError as exc:
        raise Problem(404, "not-found", "No did:web for this deployment", str(exc)) from None
    body: dict[str, Any] = did_document(did, ctx.public_keys)
    return JSONResponse(
        body, media_type=DID_MEDIA_TYPE, headers={"Cache-Control": "public, max-age=300"}
    )
