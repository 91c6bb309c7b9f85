"""The published key set comes from public material only: the API process holds no private
key (workers sign), and the operator's key commands write what each process needs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient

from api.app import create_app
from mutabaqa.settings import Environment, Settings, SettingsError
from mutabaqa.signing import (
    KeyRing,
    jwk_thumbprint,
    private_key_pem,
    public_jwk,
    public_key_pem,
)

KEYS = "/.well-known/mutabaqa-keys.json"


def _kid(key: Ed25519PrivateKey) -> str:
    return jwk_thumbprint(public_jwk(key.public_key()))


def test_the_api_serves_the_keys_with_no_private_key_present(
    settings: Settings, tmp_path: Path
) -> None:
    active, retired = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    public = tmp_path / "public" / "signing.pub.pem"
    public.parent.mkdir()
    public.write_bytes(public_key_pem(active.public_key()))
    old = tmp_path / "public" / "retired.pub.pem"
    old.write_bytes(public_key_pem(retired.public_key()))
    private = tmp_path / "workers-only" / "signing.pem"  # not on this machine
    api_settings = settings.model_copy(
        update={
            "env": Environment.PRODUCTION,
            "data_dir": tmp_path / "api-data",
            "signing_key_path": private,
            "signing_public_key_path": public,
            "signing_retired_key_paths": [old],
        }
    )
    with TestClient(create_app(api_settings)) as client:
        response = client.get(KEYS)
    assert response.status_code == 200, response.text
    assert [key["kid"] for key in response.json()["keys"]] == [_kid(active), _kid(retired)]
    assert not private.parent.exists(), "the API generated a private key"
    assert not (tmp_path / "api-data").exists()


@pytest.mark.parametrize("where", ["active", "retired"])
def test_the_api_refuses_to_start_on_a_private_key(
    settings: Settings, tmp_path: Path, where: str
) -> None:
    key = Ed25519PrivateKey.generate()
    private = tmp_path / "signing.pem"
    private.write_bytes(private_key_pem(key))
    public = tmp_path / "signing.pub.pem"
    public.write_bytes(public_key_pem(key.public_key()))
    update: dict[str, object] = (
        {"signing_public_key_path": private}
        if where == "active"
        else {"signing_public_key_path": public, "signing_retired_key_paths": [private]}
    )
    variable = (
        "MUTABAQA_SIGNING_PUBLIC_KEY_PATH"
        if where == "active"
        else "MUTABAQA_SIGNING_RETIRED_KEY_PATHS"
    )
    app = create_app(settings.model_copy(update=update))
    with pytest.raises(SettingsError, match=variable) as err, TestClient(app):
        pass
    assert "private key" in str(err.value)


def test_the_worker_refuses_a_public_file_of_another_key(tmp_path: Path) -> None:
    key, other = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    private = tmp_path / "signing.pem"
    private.write_bytes(private_key_pem(key))
    (tmp_path / "signing.pub.pem").write_bytes(public_key_pem(other.public_key()))
    with pytest.raises(SettingsError, match="not the public half"):
        KeyRing.ensure(Settings(env=Environment.DEVELOPMENT, signing_key_path=private))


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MUTABAQA_")}
    return subprocess.run(
        [sys.executable, "-m", "mutabaqa", *args],
        env=clean | env,  # no MUTABAQA_ENV: production, the default
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_keys_init_writes_the_private_key_and_its_public_half(tmp_path: Path) -> None:
    env = {
        "MUTABAQA_SIGNING_KEY_PATH": str(tmp_path / "secrets" / "signing.pem"),
        "MUTABAQA_SIGNING_PUBLIC_KEY_PATH": str(tmp_path / "public" / "signing.pub.pem"),
    }
    made = _cli("keys", "init", env=env)
    assert made.returncode == 0, made.stderr
    assert (tmp_path / "secrets" / "signing.pem").read_bytes().startswith(b"-----BEGIN PRIVATE")
    assert (tmp_path / "public" / "signing.pub.pem").read_bytes().startswith(b"-----BEGIN PUBLIC")
    kid = made.stdout.strip().splitlines()[-1].removeprefix("kid ")

    again = _cli("keys", "init", env=env)
    assert again.returncode == 0, again.stderr
    assert "existing signing key" in again.stdout and f"kid {kid}" in again.stdout

    # The export reads the public file only, as the API does: the private key may be absent.
    (tmp_path / "secrets" / "signing.pem").unlink()
    exported = _cli("keys", "export", env=env)
    assert exported.returncode == 0, exported.stderr
    assert [key["kid"] for key in json.loads(exported.stdout)["keys"]] == [kid]
