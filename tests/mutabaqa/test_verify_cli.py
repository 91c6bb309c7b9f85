"""``mutabaqa verify`` checks a certificate offline, as a relying party runs it: exit 0
genuine, 1 not genuine, 2 unknown key, 3 unreadable."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from models.certificates import SignedPayload
from mutabaqa.signing import KeyRing, sign_payload

VECTOR = json.loads(
    (Path(__file__).resolve().parents[1] / "vectors" / "certificate-v1.json").read_text("utf-8")
)
PAYLOAD = {k: v for k, v in VECTOR["payload"].items() if k != "kid"} | {
    "number": "MA-CETIEV-2027-000042",
    "issue": "1",
    "valid_until": "2030-03-14",
}
BASE_URL = "https://certificates.example.test"
KEY = Ed25519PrivateKey.generate()
RETIRED = Ed25519PrivateKey.generate()


def run_verify(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("MUTABAQA_") and "proxy" not in k.lower()
    }
    return subprocess.run(
        [sys.executable, "-m", "mutabaqa", "verify", *args],
        env={**clean, "MUTABAQA_PUBLIC_BASE_URL": BASE_URL, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture(scope="module")
def jwks() -> dict[str, Any]:
    return KeyRing(KEY, [RETIRED.public_key()]).jwks()


@pytest.fixture(scope="module")
def jwks_file(tmp_path_factory: pytest.TempPathFactory, jwks: dict[str, Any]) -> Path:
    path = tmp_path_factory.mktemp("keys") / "mutabaqa-keys.json"
    path.write_text(json.dumps(jwks))
    return path


def _as_served(signed: SignedPayload) -> dict[str, Any]:
    """The shape of ``GET /verify/{number}`` (public facts plus the signed payload)."""
    return {
        "number": signed.payload["number"],
        "status": "active",
        "certificate": signed.payload,
        "signature": signed.signature,
        "key_id": signed.kid,
    }


def _write(tmp_path: Path, document: Any, name: str = "certificate.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    return path


def test_genuine_certificate_is_described_with_its_status_url(
    tmp_path: Path, jwks_file: Path
) -> None:
    path = _write(tmp_path, _as_served(sign_payload(KEY, PAYLOAD)))
    result = run_verify(str(path), "--keys", str(jwks_file))
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert out.startswith("GENUINE")
    for fact in (
        "MA-CETIEV-2027-000042, issue 1",
        "Atlas Protective Wear SARL",
        "أطلس للملابس الواقية",
        "Respirator FFP2 NR, brand Atlas, model AT-200",
        "valid until: 2030-03-14",
    ):
        assert fact in out
    assert f"checked online at {BASE_URL}/verify/MA-CETIEV-2027-000042" in out


def test_bare_signed_document_and_retired_key_are_genuine(tmp_path: Path, jwks_file: Path) -> None:
    signed = sign_payload(RETIRED, PAYLOAD)
    path = _write(tmp_path, {"payload": signed.payload, "signature": signed.signature})
    result = run_verify(str(path), "--keys", str(jwks_file))
    assert result.returncode == 0, result.stdout + result.stderr
    assert signed.kid in result.stdout


@pytest.mark.parametrize(
    ("field", "value"),
    [("number", "MA-CETIEV-2027-000043"), ("valid_until", "2030-03-15")],
)
def test_one_character_changed_is_not_genuine(
    tmp_path: Path, jwks_file: Path, field: str, value: str
) -> None:
    document = _as_served(sign_payload(KEY, PAYLOAD))
    document["certificate"] = {**document["certificate"], field: value}
    result = run_verify(str(_write(tmp_path, document)), "--keys", str(jwks_file))
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout.startswith("NOT GENUINE")
    assert "altered or forged" in result.stdout


def test_signature_by_a_key_not_in_the_set_is_unknown(tmp_path: Path, jwks_file: Path) -> None:
    stranger = sign_payload(Ed25519PrivateKey.generate(), PAYLOAD)
    result = run_verify(str(_write(tmp_path, _as_served(stranger))), "--keys", str(jwks_file))
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stdout.startswith("UNKNOWN KEY")
    assert stranger.kid in result.stdout


@pytest.mark.parametrize(
    "content",
    [
        b"garbage, not a certificate\n",
        b"\xff\xfe\x00binary",
        b'{"certificate": {"number": "MA-CETIEV-2027-000042"}}',
        b"[1, 2, 3]",
        b"%PDF-1.7\n% not really a PDF\n",
    ],
)
def test_unreadable_files(tmp_path: Path, jwks_file: Path, content: bytes) -> None:
    path = tmp_path / "certificate"
    path.write_bytes(content)
    result = run_verify(str(path), "--keys", str(jwks_file))
    assert result.returncode == 3, result.stdout + result.stderr
    assert "UNREADABLE" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_file_and_missing_argument_are_unreadable(tmp_path: Path, jwks_file: Path) -> None:
    result = run_verify(str(tmp_path / "nowhere.json"), "--keys", str(jwks_file))
    assert result.returncode == 3, result.stdout + result.stderr
    assert "nowhere.json" in result.stderr
    assert run_verify("--keys", str(jwks_file)).returncode == 3


def test_unreadable_key_set_is_not_mistaken_for_an_unknown_key(tmp_path: Path) -> None:
    path = _write(tmp_path, _as_served(sign_payload(KEY, PAYLOAD)))
    result = run_verify(str(path), "--keys", str(tmp_path / "no-keys.json"))
    assert result.returncode == 3
    assert "key set" in result.stderr


class _KeysServer:
    def __init__(self, jwks: dict[str, Any]) -> None:
        body = json.dumps(jwks).encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/.well-known/mutabaqa-keys.json":
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                elif self.path == "/moved":
                    self.send_response(302)
                    self.send_header("Location", "/.well-known/mutabaqa-keys.json")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                else:
                    self.send_error(404)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> _KeysServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)


@pytest.fixture
def keys_server(jwks: dict[str, Any]) -> Iterator[_KeysServer]:
    with _KeysServer(jwks) as server:
        yield server


def test_keys_fetched_over_http(tmp_path: Path, keys_server: _KeysServer) -> None:
    path = _write(tmp_path, _as_served(sign_payload(KEY, PAYLOAD)))
    url = keys_server.base_url + "/.well-known/mutabaqa-keys.json"
    result = run_verify(str(path), "--keys", url)
    assert result.returncode == 0, result.stdout + result.stderr
    # The status is to be checked where the keys came from.
    assert f"{keys_server.base_url}/verify/MA-CETIEV-2027-000042" in result.stdout

    stranger = _write(tmp_path, _as_served(sign_payload(Ed25519PrivateKey.generate(), PAYLOAD)))
    assert run_verify(str(stranger), "--keys", url).returncode == 2


def test_keys_default_to_the_public_base_url(tmp_path: Path, keys_server: _KeysServer) -> None:
    path = _write(tmp_path, _as_served(sign_payload(KEY, PAYLOAD)))
    result = run_verify(str(path), env={"MUTABAQA_PUBLIC_BASE_URL": keys_server.base_url})
    assert result.returncode == 0, result.stdout + result.stderr
    assert keys_server.base_url + "/.well-known/mutabaqa-keys.json" in result.stdout

    missing = run_verify(str(path), "--keys", keys_server.base_url + "/elsewhere.json")
    assert missing.returncode == 3
    assert "HTTP 404" in missing.stderr


def test_redirects_are_not_followed(tmp_path: Path, keys_server: _KeysServer) -> None:
    path = _write(tmp_path, _as_served(sign_payload(KEY, PAYLOAD)))
    result = run_verify(str(path), "--keys", keys_server.base_url + "/moved")
    assert result.returncode == 3, result.stdout + result.stderr
    assert "redirects are not followed" in result.stderr
    assert "GENUINE" not in result.stdout


def test_keys_over_plain_http_only_from_this_machine(
    tmp_path: Path, keys_server: _KeysServer
) -> None:
    path = _write(tmp_path, _as_served(sign_payload(KEY, PAYLOAD)))
    port = keys_server.server.server_address[1]
    local = run_verify(
        str(path), "--keys", f"http://localhost:{port}/.well-known/mutabaqa-keys.json"
    )
    assert local.returncode == 0, local.stdout + local.stderr

    # Refused before any connection is attempted: no network is needed to see it.
    for url in (
        "http://certificates.example.test/.well-known/mutabaqa-keys.json",
        "http://192.0.2.10/.well-known/mutabaqa-keys.json",
        "ftp://certificates.example.test/.well-known/mutabaqa-keys.json",
    ):
        refused = run_verify(str(path), "--keys", url)
        assert refused.returncode == 3, (url, refused.stdout, refused.stderr)
        assert "https only" in refused.stderr
    # The default key set (the public base URL's) obeys the same rule.
    default = run_verify(
        str(path), env={"MUTABAQA_PUBLIC_BASE_URL": "http://certificates.example.test"}
    )
    assert default.returncode == 3
    assert "https only" in default.stderr


# --- Certificate PDFs (embedded signed payload + PAdES signature) -------------------------


@pytest.fixture(scope="module")
def pdfs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A signed certificate PDF, the same PDF altered after signing, unsigned, and signed by
    another CA; and the CA certificate of the deployment."""
    from activities.certificate_pdf import (
        CertificateDocument,
        CertificationBody,
        render_certificate_pdf,
        sign_pdf,
    )
    from activities.pki import create_dev_ca, load_signing_identity

    folder = tmp_path_factory.mktemp("pdf")
    signed = sign_payload(KEY, PAYLOAD)
    document = CertificateDocument(
        payload=signed.payload,
        signature=signed.signature,
        body=CertificationBody(
            name="Organisme de certification de démonstration",
            name_ar="هيئة الإشهاد التجريبية",
            address="Casablanca, Maroc",
            accreditation="ISO/IEC 17065",
        ),
        holder_address="Zone industrielle, Casablanca",
        verify_url=f"{BASE_URL}/verify/{signed.payload['number']}",
    )
    unsigned = render_certificate_pdf(document)
    ours = create_dev_ca(folder / "ca")
    theirs = create_dev_ca(folder / "other-ca")
    genuine = sign_pdf(unsigned, load_signing_identity(ours.folder))
    files = {
        "genuine": genuine,
        "appended": genuine + b"\n% appended after signing\n",
        "unsigned": unsigned,
        "other_ca": sign_pdf(unsigned, load_signing_identity(theirs.folder)),
    }
    paths = {name: folder / f"{name}.pdf" for name in files}
    for name, data in files.items():
        paths[name].write_bytes(data)
    paths["ca"] = ours.ca_cert
    return paths


def test_genuine_pdf(pdfs: dict[str, Path], jwks_file: Path) -> None:
    result = run_verify(str(pdfs["genuine"]), "--keys", str(jwks_file), "--ca", str(pdfs["ca"]))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "MA-CETIEV-2027-000042, issue 1" in result.stdout
    assert "unmodified, chaining to the given CA" in result.stdout
    assert f"{BASE_URL}/verify/MA-CETIEV-2027-000042" in result.stdout

    without_ca = run_verify(str(pdfs["genuine"]), "--keys", str(jwks_file))
    assert without_ca.returncode == 0, without_ca.stdout + without_ca.stderr
    assert "signer not checked" in without_ca.stdout


@pytest.mark.parametrize(("name", "code"), [("appended", 1), ("unsigned", 1), ("other_ca", 2)])
def test_pdf_altered_unsigned_or_signed_elsewhere(
    pdfs: dict[str, Path], jwks_file: Path, name: str, code: int
) -> None:
    result = run_verify(str(pdfs[name]), "--keys", str(jwks_file), "--ca", str(pdfs["ca"]))
    assert result.returncode == code, result.stdout + result.stderr
    assert "embedded certificate is genuine" in result.stdout or code == 2
    assert "Traceback" not in result.stderr
