"""``mutabaqa codec-server``: the payload codec over HTTP, so the Temporal UI (and the
``temporal`` CLI, ``--codec-endpoint``) can show the payloads it otherwise sees encrypted.

It speaks the protocol the Temporal UI expects: ``POST /encode`` and ``POST /decode`` take
and return ``{"payloads": [...]}`` in protobuf JSON (base64 metadata values and data).
Whoever reaches it can read every payload: it listens on the loopback interface by
default, answers only the Temporal UI origins of ``MUTABAQA_CODEC_SERVER_ORIGINS``
(CORS), and belongs behind the operators' own authentication when exposed further
(``docs/temporal-security.md``).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from google.protobuf import json_format
from temporalio.api.common.v1 import Payloads

from mutabaqa.codec import CodecError, EncryptionCodec, codec_for
from mutabaqa.settings import Settings


def _problem(status: int, kind: str, detail: str) -> JSONResponse:
    return JSONResponse(
        {"type": f"urn:mutabaqa:problem:{kind}", "title": "Cannot convert", "status": status,
         "detail": detail},
        status_code=status,
        media_type="application/problem+json",
    )  # fmt: skip


def create_codec_app(settings: Settings, codec: EncryptionCodec | None = None) -> FastAPI:
    codec = codec or codec_for(settings)
    app = FastAPI(title="Mutabaqa payload codec", docs_url=None, redoc_url=None)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.codec_server_origins,
        allow_credentials=True,
        allow_methods=["POST"],
        allow_headers=["Content-Type", "X-Namespace", "Authorization"],
    )

    async def convert(request: Request, encode: bool) -> JSONResponse:
        try:
            payloads = json_format.Parse(await request.body(), Payloads())
        except (json_format.ParseError, UnicodeDecodeError) as exc:
            return _problem(422, "invalid-payloads", f"not a JSON list of payloads: {exc}")
        try:
            if encode:
                out = await codec.encode(payloads.payloads)
            else:
                out = await codec.decode(payloads.payloads)
        except CodecError as exc:
            return _problem(422, "undecodable-payload", str(exc))
        body: dict[str, Any] = json_format.MessageToDict(Payloads(payloads=out))
        return JSONResponse({"payloads": body.get("payloads", [])})

    @app.post("/encode")
    async def encode(request: Request) -> JSONResponse:
        return await convert(request, encode=True)

    @app.post("/decode")
    async def decode(request: Request) -> JSONResponse:
        return await convert(request, encode=False)

    return app
