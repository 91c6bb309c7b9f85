"""The payload codec: what Temporal stores is encrypted (histories hold no names, e-mails or
reasons in clear), keys rotate, failures are encoded, and operators read payloads through
``mutabaqa codec-server``."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session
from temporalio.api.common.v1 import Payload
from temporalio.api.failure.v1 import Failure
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError

from api.app import create_app
from models.requests import CertificationRequest
from mutabaqa.codec import ENCODING, KEY_ID, CodecError, EncryptionCodec, data_converter
from mutabaqa.codec_server import create_codec_app
from mutabaqa.settings import Settings
from tests.api.requests_helpers import act, make_cast, to_review
from tests.conftest import RunningWorker

KEY_A = base64.b64encode(b"a" * 32).decode()
KEY_B = base64.b64encode(b"b" * 32).decode()
EMAIL = re.compile(rb"[\w.+-]+@[\w-]+\.[\w.]+")


def _settings(keys: str) -> Settings:
    return Settings(temporal_payload_keys=keys)


def _plain(text: str) -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=json.dumps(text).encode())


async def test_payloads_are_encrypted_and_decrypt_back() -> None:
    codec = EncryptionCodec({"a": b"a" * 32})
    secret = _plain("Reason: holder.name@example.ma asked for it")
    [stored] = await codec.encode([secret])
    assert stored.metadata["encoding"] == ENCODING
    assert stored.metadata[KEY_ID] == b"a"
    assert b"example.ma" not in stored.SerializeToString()
    assert await codec.decode([stored]) == [secret]
    # A payload written before the codec (or by a client without it) decodes as it is.
    assert await codec.decode([secret]) == [secret]


async def test_rotation_the_first_key_encrypts_every_key_decrypts() -> None:
    old = data_converter(_settings(f"old:{KEY_A}"))
    rotated = data_converter(_settings(f"new:{KEY_B},old:{KEY_A}"))
    assert old.payload_codec is not None and rotated.payload_codec is not None
    [under_old] = await old.payload_codec.encode([_plain("x")])
    [under_new] = await rotated.payload_codec.encode([_plain("y")])
    assert under_new.metadata[KEY_ID] == b"new"
    assert await rotated.payload_codec.decode([under_old]) == [_plain("x")]
    with pytest.raises(CodecError, match="unknown key 'new'"):
        await old.payload_codec.decode([under_new])


async def test_a_tampered_payload_does_not_decode() -> None:
    codec = EncryptionCodec({"a": b"a" * 32, "b": b"b" * 32})
    [stored] = await codec.encode([_plain("x")])
    flipped = Payload(
        metadata=stored.metadata, data=stored.data[:-1] + bytes([stored.data[-1] ^ 1])
    )
    with pytest.raises(CodecError, match="does not authenticate"):
        await codec.decode([flipped])
    relabelled = Payload(metadata={**stored.metadata, KEY_ID: b"b"}, data=stored.data)
    with pytest.raises(CodecError):
        await codec.decode([relabelled])


async def test_failure_messages_are_encoded_too() -> None:
    converter = data_converter(_settings(f"a:{KEY_A}"))
    failure = Failure()
    await converter.encode_failure(
        ApplicationError("officer jane.doe@example.ma may not grant", type="forbidden"), failure
    )
    assert b"jane.doe" not in failure.SerializeToString()
    assert failure.message == "Encoded failure"
    decoded = await converter.decode_failure(failure)
    assert "jane.doe@example.ma" in str(decoded)


def test_the_codec_server_decodes_for_the_ui_and_refuses_garbage() -> None:
    settings = _settings(f"a:{KEY_A}")
    http = TestClient(create_codec_app(settings))
    origin = {"Origin": settings.codec_server_origins[0]}
    plain = {"metadata": {"encoding": base64.b64encode(b"json/plain").decode()},
             "data": base64.b64encode(b'"reason"').decode()}  # fmt: skip
    encoded = http.post("/encode", json={"payloads": [plain]}, headers=origin)
    assert encoded.status_code == 200, encoded.text
    assert encoded.headers["access-control-allow-origin"] == origin["Origin"]
    [sealed] = encoded.json()["payloads"]
    assert base64.b64decode(sealed["metadata"]["encoding"]) == ENCODING
    decoded = http.post("/decode", json={"payloads": [sealed]})
    assert decoded.json() == {"payloads": [plain]}
    bad = http.post("/decode", content=b"not json")
    assert bad.status_code == 422
    assert bad.headers["content-type"] == "application/problem+json"
    foreign = _settings(f"z:{KEY_B}")
    other = TestClient(create_codec_app(foreign)).post("/decode", json={"payloads": [sealed]})
    assert other.status_code == 422 and "unknown key" in other.json()["detail"]
    # An origin that is not the Temporal UI gets no CORS grant.
    stranger = http.post("/decode", json={"payloads": [sealed]},
                         headers={"Origin": "http://evil.example"})  # fmt: skip
    assert "access-control-allow-origin" not in stranger.headers


# --- against the session's Temporal server --------------------------------------------------


@pytest.fixture(scope="module")
def client(settings: Settings, worker: RunningWorker) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def _payloads(node: Any) -> Iterator[dict[str, Any]]:
    """Every payload of a history in its JSON form (``metadata`` and ``data``), but for
    headers (they carry only seals) and search attributes (Temporal indexes them: status,
    organisation id, scheme and kind, no personal data), see ``docs/temporal-security.md``."""
    if isinstance(node, dict):
        if "metadata" in node and "data" in node:
            yield node
        for key, value in node.items():
            if key not in ("header", "searchAttributes"):
                yield from _payloads(value)
    elif isinstance(node, list):
        for value in node:
            yield from _payloads(value)


def _workflow_id(engine: Engine, request_id: str) -> str:
    with Session(engine) as session:
        row = session.get(CertificationRequest, request_id)
        assert row is not None
        return row.workflow_id


def test_the_history_temporal_keeps_holds_no_reason_in_clear(
    client: TestClient, settings: Settings, engine: Engine
) -> None:
    cast = make_cast(client, settings)
    request = to_review(client, cast)
    reason = f"Send the filter test certificate {uuid.uuid4().hex}"
    asked = act(client, cast.officer_auth, request["id"], "request_info", {"message": reason})
    assert asked.status_code == 200, asked.text
    workflow_id = _workflow_id(engine, request["id"])

    async def history() -> tuple[str, list[Payload]]:
        # What anyone with access to Temporal (or its database) sees: no codec.
        raw = await Client.connect(
            settings.resolved_temporal_address, data_converter=pydantic_data_converter
        )
        fetched = await raw.get_workflow_handle(workflow_id).fetch_history()
        stored = [
            Payload(
                metadata={k: base64.b64decode(v) for k, v in p["metadata"].items()},
                data=base64.b64decode(p["data"]),
            )
            for p in _payloads(json.loads(fetched.to_json()))
        ]
        converter = data_converter(settings)
        assert converter.payload_codec is not None
        return fetched.to_json(), await converter.payload_codec.decode(stored)

    text, decoded = asyncio.run(history())
    assert reason not in text
    assert cast.product["name"] not in text
    assert not EMAIL.search(text.encode())
    stored = list(_payloads(json.loads(text)))
    assert len(stored) > 5
    plain = [p for p in stored if base64.b64decode(p["metadata"]["encoding"]) != ENCODING]
    assert plain == [], plain
    # Decoded with the codec, the reason is there, and the actors are ids and roles only.
    clear = b"\n".join(p.data for p in decoded)
    assert reason.encode() in clear
    assert not EMAIL.search(clear)
    actors = [
        actor
        for p in decoded
        if p.metadata.get("encoding") == b"json/plain"
        for actor in _actors(json.loads(p.data))
    ]
    assert {"user_id": cast.officer["id"], "roles": ["compliance_officer"],
            "organization_id": None, "centre_code": None} in actors  # fmt: skip


def _actors(node: Any) -> Iterator[Any]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "actor":
                yield value
            yield from _actors(value)
    elif isinstance(node, list):
        for value in node:
            yield from _actors(value)


RECORDED = Path(__file__).parents[1] / "workflows" / "histories"


@pytest.mark.parametrize(
    "name",
    [
        "certification_request.json",
        "certificate_issue_0.json",
        "certificate_issue_1.json",
        "canary.json",
    ],
)
def test_recorded_histories_hold_no_email_and_no_readable_payload(name: str) -> None:
    text = (RECORDED / name).read_text()
    assert not EMAIL.search(text.encode())
    stored = list(_payloads(json.loads(text)))
    assert stored
    codec = data_converter(Settings()).payload_codec
    assert isinstance(codec, EncryptionCodec)
    for p in stored:
        raw = Payload(
            metadata={k: base64.b64decode(v) for k, v in p["metadata"].items()},
            data=base64.b64decode(p["data"]),
        )
        assert raw.metadata["encoding"] == ENCODING
        with pytest.raises(ValueError):
            json.loads(raw.data)
        clear = codec.decrypt(raw)
        assert not EMAIL.search(clear.data)
        if clear.metadata["encoding"] == b"json/plain":
            json.loads(clear.data)  # what the workflow read
