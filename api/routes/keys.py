"""``GET /.well-known/mutabaqa-keys.json``: the public keys that sign certificates.

Public and permanent, at the root (not under ``/api/v1``): offline verifiers fetch it
(``mutabaqa verify``). The active key comes first; retired keys stay listed so that the
certificates they signed can still be verified. Served from public-key files only: the
API process holds no private key.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response

from api.context import AppContext
from api.deps import get_context
from models.certificates import KeySet

KEYS_PATH = "/.well-known/mutabaqa-keys.json"

router = APIRouter(tags=["verification"])

ContextDep = Annotated[AppContext, Depends(get_context)]


@router.get(KEYS_PATH, response_model=KeySet)
def signing_keys(ctx: ContextDep, response: Response) -> KeySet:
    """The certificate signing keys as a JWK set (Ed25519, ``kid`` = RFC 7638 thumbprint)."""
    response.headers["Cache-Control"] = "public, max-age=300"
    return ctx.public_keys.key_set()
