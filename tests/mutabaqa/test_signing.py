"""Certificate signatures (SPEC section 5): the published test vector reproduced bit for bit,
checked by code independent of the project's, and the keys as an operator manages them."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import stat
from pathlib import Path
from typing import Any

import pytest
import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from fastapi.testclient import TestClient

from api.app import create_app
from mutabaqa.settings import Settings, SettingsError
from mutabaqa.signing import (
    KeyRing,
    canonical_payload,
    jwk_thumbprint,
    load_public_key,
    private_key_pem,
    public_jwk,
    public_key_pem,
    sign_payload,
    verify_payload,
)

#: The product's worked example (SPEC section 5), copied unchanged from the specification.
VECTOR_PATH = Path(__file__).resolve().parents[1] / "vectors" / "certificate-v1.json"
VECTOR: dict[str, Any] = json.loads(VECTOR_PATH.read_text(encoding="utf-8"))

PRODUCTION = {
    "env": "production",
    "jwt_secret": "j" * 40,
    "s3_secret_key": "real-s3-secret",
    "admin_password": "real-admin-password",
    "audit_key": "a" * 32,
}


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _vector_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(bytes.fromhex(VECTOR["private_seed_hex"]))


def _tiny_jcs(payload: dict[str, Any]) -> bytes:
    """RFC 8785 for a payload of strings only whose keys are ASCII: sorted keys, no
    whitespace, strings as UTF-8 with the minimal escapes json.dumps also makes."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.encode("utf-8")


def _independent_thumbprint(x: str) -> str:
    members = '{"crv":"Ed25519","kty":"OKP","x":"' + x + '"}'
    digest = hashlib.sha256(members.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _without_kid(payload: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in payload.items() if k != "kid"}


# --- The test vector -----------------------------------------------------------------------


def test_vector_key_and_kid_are_reproduced() -> None:
    jwk = public_jwk(_vector_key().public_key())
    assert jwk == {"kty": "OKP", "crv": "Ed25519", "x": VECTOR["public_jwk"]["x"]}
    assert jwk_thumbprint(jwk) == VECTOR["public_jwk"]["kid"]
    assert jwk_thumbprint(VECTOR["public_jwk"]) == VECTOR["public_jwk"]["kid"]  # kid ignored


def test_vector_signature_is_reproduced_bit_for_bit() -> None:
    signed = sign_payload(_vector_key(), _without_kid(VECTOR["payload"]))
    assert signed.kid == VECTOR["public_jwk"]["kid"]
    assert signed.payload == VECTOR["payload"]
    canonical = canonical_payload(signed.payload)
    assert hashlib.sha256(canonical).hexdigest() == VECTOR["canonical_sha256"]
    assert signed.signature == VECTOR["signature_b64url"]  # Ed25519 is deterministic


def test_vector_verifies_with_independent_code() -> None:
    """cryptography directly, a JCS written here and a thumbprint from its definition."""
    payload = VECTOR["payload"]
    tiny = _tiny_jcs(payload)
    assert tiny == rfc8785.dumps(payload)
    assert hashlib.sha256(tiny).hexdigest() == VECTOR["canonical_sha256"]
    x = VECTOR["public_jwk"]["x"]
    assert _independent_thumbprint(x) == VECTOR["public_jwk"]["kid"] == payload["kid"]
    public_key = Ed25519PublicKey.from_public_bytes(_b64url_decode(x))
    public_key.verify(_b64url_decode(VECTOR["signature_b64url"]), tiny)  # raises if invalid
    assert verify_payload(payload, VECTOR["signature_b64url"], VECTOR["public_jwk"])


def test_own_signature_verifies_with_independent_code() -> None:
    key = Ed25519PrivateKey.generate()
    signed = sign_payload(key, _without_kid(VECTOR["payload"]) | {"number": "MA-X-2027-000002"})
    x = public_jwk(key.public_key())["x"]
    assert signed.kid == _independent_thumbprint(x) == signed.payload["kid"]
    Ed25519PublicKey.from_public_bytes(_b64url_decode(x)).verify(
        _b64url_decode(signed.signature), _tiny_jcs(dict(signed.payload))
    )


@pytest.mark.parametrize(
    ("path", "new"),
    [
        (("number",), "MA-CTTH-2026-000002"),
        (("issue",), "1"),
        (("valid_until",), "2039-11-28"),
        (("holder", "name"), "Atlas Protective Wear SARM"),
        (("holder", "name_ar"), "أطلس للملابس الواقيه"),
        (("standards", 0, "edition"), "2001+A2:2009"),
        (("scope",), "Filtering half mask against particles, class FFP3 NR"),
        (("kid",), "shcuwjR-O_G2IP5pyEITyZ_3RepiyL1m71LrpgbGNZJ"),
    ],
)
def test_one_character_changed_is_not_genuine(path: tuple[Any, ...], new: str) -> None:
    payload = copy.deepcopy(VECTOR["payload"])
    target = payload
    for step in path[:-1]:
        target = target[step]
    old = target[path[-1]]
    assert len(old) == len(new) and sum(a != b for a, b in zip(old, new, strict=True)) == 1
    target[path[-1]] = new
    assert not verify_payload(payload, VECTOR["signature_b64url"], VECTOR["public_jwk"])
    public_key = Ed25519PublicKey.from_public_bytes(_b64url_decode(VECTOR["public_jwk"]["x"]))
    with pytest.raises(InvalidSignature):  # the independent check agrees
        public_key.verify(_b64url_decode(VECTOR["signature_b64url"]), _tiny_jcs(payload))


def test_changed_signature_or_other_key_is_not_genuine() -> None:
    payload, signature = VECTOR["payload"], VECTOR["signature_b64url"]
    flipped = ("A" if signature[10] != "A" else "B").join((signature[:10], signature[11:]))
    assert not verify_payload(payload, flipped, VECTOR["public_jwk"])
    assert not verify_payload(payload, signature + "=", VECTOR["public_jwk"])
    assert not verify_payload(payload, "", VECTOR["public_jwk"])
    other = public_jwk(Ed25519PrivateKey.generate().public_key())
    assert not verify_payload(payload, signature, other)
    assert not verify_payload(payload, signature, {"kty": "EC", "crv": "P-256", "x": "AA"})


def test_payload_holds_strings_only() -> None:
    key = Ed25519PrivateKey.generate()
    for bad in ({"issue": 0}, {"scheme": {"version": 1}}, {"valid": True}, {"note": None}):
        with pytest.raises(TypeError, match="strings only"):
            sign_payload(key, _without_kid(VECTOR["payload"]) | bad)


def test_a_payload_naming_another_key_is_refused() -> None:
    with pytest.raises(ValueError, match="is being signed by"):
        sign_payload(Ed25519PrivateKey.generate(), VECTOR["payload"])


# --- Key ring ------------------------------------------------------------------------------


def test_development_generates_the_key_on_first_start_then_reuses_it(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    path = settings.resolved_signing_key_path
    assert not path.exists()
    first = KeyRing.ensure(settings)
    assert path.is_file()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    pem = path.read_bytes()
    loaded = serialization.load_pem_private_key(pem, password=None)
    assert isinstance(loaded, Ed25519PrivateKey)
    x = public_jwk(loaded.public_key())["x"]
    assert first.active_kid == _independent_thumbprint(x)

    second = KeyRing.ensure(settings)
    assert second.active_kid == first.active_kid
    assert path.read_bytes() == pem
    # The private key and its public half (what the API serves); no temporary file left.
    public = settings.resolved_signing_public_key_path
    assert sorted(p.name for p in path.parent.iterdir()) == sorted([path.name, public.name])
    assert public.name == "signing-ed25519.pub.pem"
    assert stat.S_IMODE(public.stat().st_mode) == 0o644
    assert b"PRIVATE" not in public.read_bytes()
    assert public_jwk(load_public_key(public)) == public_jwk(loaded.public_key())


def test_production_without_key_refuses_naming_the_variable(tmp_path: Path) -> None:
    missing = tmp_path / "secrets" / "signing.pem"
    settings = Settings(**PRODUCTION, data_dir=tmp_path, signing_key_path=missing)  # type: ignore[arg-type]
    with pytest.raises(SettingsError) as err:
        KeyRing.ensure(settings)
    assert "MUTABAQA_SIGNING_KEY_PATH" in str(err.value)
    assert str(missing) in str(err.value)
    assert not missing.exists() and not missing.parent.exists()


def test_production_uses_the_key_it_is_given(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    path = tmp_path / "signing.pem"
    path.write_bytes(private_key_pem(key))
    settings = Settings(**PRODUCTION, data_dir=tmp_path, signing_key_path=path)  # type: ignore[arg-type]
    ring = KeyRing.ensure(settings)
    assert ring.active_kid == _independent_thumbprint(public_jwk(key.public_key())["x"])
    signed = ring.sign(_without_kid(VECTOR["payload"]))
    assert signed.kid == ring.active_kid
    assert verify_payload(signed.payload, signed.signature, public_jwk(key.public_key()))


def test_a_key_file_that_is_not_ed25519_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "signing.pem"
    path.write_text("not a key\n")
    with pytest.raises(SettingsError, match="MUTABAQA_SIGNING_KEY_PATH"):
        KeyRing.ensure(Settings(data_dir=tmp_path, signing_key_path=path))


def test_retired_keys_are_listed_and_still_verify(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old_private, old_public = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    (tmp_path / "old-private.pem").write_bytes(private_key_pem(old_private))
    (tmp_path / "old-public.pem").write_bytes(public_key_pem(old_public.public_key()))
    monkeypatch.setenv(
        "MUTABAQA_SIGNING_RETIRED_KEY_PATHS",
        json.dumps([str(tmp_path / "old-private.pem"), str(tmp_path / "old-public.pem")]),
    )
    settings = Settings(data_dir=tmp_path / "data")
    assert settings.signing_retired_key_paths == [
        tmp_path / "old-private.pem",
        tmp_path / "old-public.pem",
    ]
    ring = KeyRing.ensure(settings)

    old_signed = sign_payload(old_private, _without_kid(VECTOR["payload"]))
    keys = ring.jwks()["keys"]
    assert [k["kid"] for k in keys] == [
        ring.active_kid,
        old_signed.kid,
        jwk_thumbprint(public_jwk(old_public.public_key())),
    ]
    for jwk in keys:
        assert set(jwk) == {"kty", "crv", "kid", "x"}
        assert jwk["kid"] == _independent_thumbprint(jwk["x"])
    assert ring.find(old_signed.kid) == keys[1]
    assert ring.find("no-such-kid") is None
    assert ring.verify(old_signed.payload, old_signed.signature)
    assert ring.sign(_without_kid(VECTOR["payload"])).kid == ring.active_kid


def test_a_missing_retired_key_names_its_variable(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, signing_retired_key_paths=[tmp_path / "gone.pem"])
    with pytest.raises(SettingsError, match="MUTABAQA_SIGNING_RETIRED_KEY_PATHS"):
        KeyRing.ensure(settings)


# --- GET /.well-known/mutabaqa-keys.json --------------------------------------------------


def test_well_known_keys_serves_the_active_key(settings: Settings) -> None:
    with TestClient(create_app(settings)) as client:
        response = client.get("/.well-known/mutabaqa-keys.json")  # no credentials
        assert client.get("/api/v1/.well-known/mutabaqa-keys.json").status_code == 404
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["cache-control"] == "public, max-age=300"
    key = serialization.load_pem_private_key(
        settings.resolved_signing_key_path.read_bytes(), password=None
    )
    assert isinstance(key, Ed25519PrivateKey)
    x = public_jwk(key.public_key())["x"]
    assert response.json()["keys"][0] == {
        "kty": "OKP",
        "crv": "Ed25519",
        "kid": _independent_thumbprint(x),
        "x": x,
    }
