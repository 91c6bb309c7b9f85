"""``mutabaqa verify`` on a W3C verifiable credential, as a relying party runs it: the
issuer's did:web and its status lists are served by a real HTTP server on the loopback
(``http://localhost:<port>``, the one host did:web resolves over plain http).

Exit status as for a payload v1: 0 genuine (in force or not: the report says which), 1
altered or forged, 2 key unknown to the issuer, 3 unreadable."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from domain.credentials import build_credential
from domain.did_web import did_web_from_base_url
from domain.status_list import StatusBitstring
from mutabaqa.did_document import did_document, issue_proof
from mutabaqa.signing import KeyRing
from tests import vc_verifier
from tests.domain.test_credentials import VECTOR, make_input

RING = KeyRing(Ed25519PrivateKey.generate())
STRANGER = KeyRing(Ed25519PrivateKey.generate())
SIGNED_AT = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)
SUSPENSION_INDEX, REVOCATION_INDEX = 94567, 2048
VC_V2 = "https://www.w3.org/ns/credentials/v2"


class IssuerServer:
    """The issuer's host: ``/.well-known/did.json`` and its status lists, changeable per
    test; it records the paths asked for."""

    def __init__(self) -> None:
        self.routes: dict[str, bytes] = {}
        self.requested: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requested.append(self.path)
                body = server.routes.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                kind = "did+json" if self.path.endswith("did.json") else "vc"
                self.send_response(200)
                self.send_header("Content-Type", f"application/{kind}")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://localhost:{self.http.server_address[1]}"
        self.did = did_web_from_base_url(self.base)
        self.thread = threading.Thread(target=self.http.serve_forever, daemon=True)

    def list_url(self, purpose: str) -> str:
        return f"{self.base}/status-lists/{purpose}/1"

    def serve(self, url_or_path: str, document: Any) -> None:
        self.routes[url_or_path.removeprefix(self.base)] = json.dumps(document).encode()

    def status_list(
        self,
        purpose: str,
        bits: tuple[int, ...] = (),
        *,
        ring: KeyRing = RING,
        **changes: Any,
    ) -> dict[str, Any]:
        """A status list credential of the issuer (the brief's shape), signed by ``ring``."""
        bitstring = StatusBitstring()
        for bit in bits:
            bitstring.set(bit)
        url = self.list_url(purpose)
        document: dict[str, Any] = {
            "@context": [VC_V2],
            "id": url,
            "type": ["VerifiableCredential", "BitstringStatusListCredential"],
            "issuer": self.did,
            "validFrom": "2020-01-01T00:00:00Z",
            "credentialSubject": {
                "id": f"{url}#list",
                "type": "BitstringStatusList",
                "statusPurpose": purpose,
                "encodedList": bitstring.encode(),
                "ttl": 300000,
            },
        }
        document.update(changes)
        return issue_proof(document, ring, self.did, SIGNED_AT)

    def credential(self, ring: KeyRing = RING, **input_changes: Any) -> dict[str, Any]:
        """A Digital Conformity Credential of this issuer with its two status entries."""
        credential = build_credential(
            make_input(issuer_did=self.did, public_base_url=self.base, **input_changes)
        )
        credential["credentialStatus"] = [
            {
                "id": f"{self.list_url(purpose)}#{index}",
                "type": "BitstringStatusListEntry",
                "statusPurpose": purpose,
                "statusListIndex": str(index),
                "statusListCredential": self.list_url(purpose),
            }
            for purpose, index in (
                ("suspension", SUSPENSION_INDEX),
                ("revocation", REVOCATION_INDEX),
            )
        ]
        return issue_proof(credential, ring, self.did, SIGNED_AT)

    def reset(self) -> None:
        self.routes.clear()
        self.requested.clear()
        self.serve("/.well-known/did.json", did_document(self.did, RING))
        for purpose in ("suspension", "revocation"):
            self.serve(self.list_url(purpose), self.status_list(purpose))


@pytest.fixture(scope="module")
def server() -> Iterator[IssuerServer]:
    issuer = IssuerServer()
    issuer.thread.start()
    try:
        yield issuer
    finally:
        issuer.http.shutdown()
        issuer.http.server_close()
        issuer.thread.join(10)


@pytest.fixture
def issuer(server: IssuerServer) -> IssuerServer:
    server.reset()
    return server


@pytest.fixture(scope="module")
def credential(server: IssuerServer) -> dict[str, Any]:
    return server.credential()


def run_verify(*args: str) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("MUTABAQA_") and "proxy" not in k.lower()
    }
    return subprocess.run(
        [sys.executable, "-m", "mutabaqa", "verify", *args],
        env={**clean, "MUTABAQA_PUBLIC_BASE_URL": "https://elsewhere.example.test"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def write(tmp_path: Path, document: Any, name: str = "credential.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    return path


# --- Online: the did:web and the status lists ------------------------------------------------


def test_genuine_credential_in_force(
    tmp_path: Path, issuer: IssuerServer, credential: dict[str, Any]
) -> None:
    # The fixtures are right by an independent reading of the W3C texts too.
    vc_verifier.verify_with_did_document(credential, did_document(issuer.did, RING))
    result = run_verify(str(write(tmp_path, credential)))
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert out.startswith("GENUINE: the proof matches the contents.")
    for fact in (
        "Certificate of conformity MA-CTTH-2026-000001, issue 0",
        f"issuer: Organisme de certification de démonstration ({issuer.did})",
        "holder: Atlas Protective Wear SARL (001234567000089, MA)",
        "product: Respirator FFP2 NR (Brand Atlas, model AT-200)",
        "NM EN 149:2001+A1:2009",
        "valid until: 2029-11-28T23:00:00Z",
        f"keys: {issuer.base}/.well-known/did.json",
    ):
        assert fact in out
    assert "IN FORCE: within its validity period, neither suspended nor revoked" in out
    assert f"suspension list {issuer.list_url('suspension')}, index 94567: bit 0" in out
    assert f"revocation list {issuer.list_url('revocation')}, index 2048: bit 0" in out
    assert "NOT IN FORCE" not in out
    assert set(issuer.requested) == {
        "/.well-known/did.json",
        "/status-lists/suspension/1",
        "/status-lists/revocation/1",
    }


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("credentialSubject", "issuedToParty", "name"), "Atlas Protective Wear SA"),
        (("validUntil",), "2039-11-28T23:00:00Z"),
        (("credentialStatus", 1, "statusListIndex"), "2049"),
    ],
)
def test_a_changed_leaf_is_not_genuine(
    tmp_path: Path,
    issuer: IssuerServer,
    credential: dict[str, Any],
    path: tuple[Any, ...],
    value: str,
) -> None:
    changed = copy.deepcopy(credential)
    node = changed
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value
    result = run_verify(str(write(tmp_path, changed)))
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout.startswith("NOT GENUINE: the proof does not match the contents")
    assert "(as it claims)" in result.stdout
    assert "IN FORCE" not in result.stdout
    assert not any(p.startswith("/status-lists/") for p in issuer.requested)


def test_a_key_the_issuer_does_not_publish_is_unknown(tmp_path: Path, issuer: IssuerServer) -> None:
    forged = issuer.credential(ring=STRANGER)
    result = run_verify(str(write(tmp_path, forged)))
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stdout.startswith("UNKNOWN KEY")
    assert f"{issuer.did}#{STRANGER.active_kid}" in result.stdout


def test_a_proof_by_another_did_is_not_the_issuers(
    tmp_path: Path, issuer: IssuerServer, credential: dict[str, Any]
) -> None:
    claimed = copy.deepcopy(credential)
    claimed["issuer"]["id"] = "did:web:certification.example.ma"
    result = run_verify(str(write(tmp_path, claimed)))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "which is not the issuer did:web:certification.example.ma's" in result.stdout
    assert issuer.requested == []  # refused before anything is fetched


@pytest.mark.parametrize(
    ("purpose", "index", "word"),
    [("suspension", SUSPENSION_INDEX, "suspended"), ("revocation", REVOCATION_INDEX, "revoked")],
)
def test_a_set_status_bit_is_genuine_but_not_in_force(
    tmp_path: Path,
    issuer: IssuerServer,
    credential: dict[str, Any],
    purpose: str,
    index: int,
    word: str,
) -> None:
    # Neighbouring bits set too: only the credential's own bit counts.
    issuer.serve(issuer.list_url(purpose), issuer.status_list(purpose, (index, index + 1)))
    result = run_verify(str(write(tmp_path, credential)))
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert out.startswith("GENUINE")
    assert f"NOT IN FORCE: {word}." in out
    assert f"{purpose} list {issuer.list_url(purpose)}, index {index}: bit 1, {word}" in out
    other = "revocation" if purpose == "suspension" else "suspension"
    assert f"{other} list {issuer.list_url(other)}" in out and "bit 0, not" in out


def test_expired_credential_is_genuine_but_not_in_force(
    tmp_path: Path, issuer: IssuerServer
) -> None:
    payload = VECTOR["payload"] | {"issued_on": "2017-01-10", "valid_until": "2020-01-09"}
    expired = issuer.credential(payload=payload)
    assert expired["validUntil"] == "2020-01-09T23:00:00Z"
    result = run_verify(str(write(tmp_path, expired)))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "NOT IN FORCE: expired (valid until 2020-01-09T23:00:00Z)." in result.stdout


def tampered(issuer: IssuerServer, purpose: str) -> dict[str, Any]:
    """A signed list whose bit for the credential was then set (proof no longer valid)."""
    index = SUSPENSION_INDEX if purpose == "suspension" else REVOCATION_INDEX
    signed = issuer.status_list(purpose)
    signed["credentialSubject"]["encodedList"] = issuer.status_list(purpose, (index,))[
        "credentialSubject"
    ]["encodedList"]
    return signed


@pytest.mark.parametrize(
    ("purpose", "make", "problem"),
    [
        ("revocation", tampered, "not trusted: its proof does not verify"),
        (
            "revocation",
            lambda i, p: i.status_list(p, (REVOCATION_INDEX,), ring=STRANGER),
            "not trusted: its proof does not verify",
        ),
        # The suspension list served at the revocation list's address.
        ("revocation", lambda i, p: i.status_list("suspension"), "the status list served there"),
        (
            "suspension",
            lambda i, p: i.status_list(p, id=i.list_url("revocation")),
            "the status list served there",
        ),
        (
            "suspension",
            lambda i, p: i.status_list(p, validUntil="2021-01-01T00:00:00Z"),
            "it is stale",
        ),
        ("suspension", lambda i, p: None, "HTTP 404"),
    ],
    ids=["tampered", "stranger-key", "other-list", "other-id", "stale", "missing"],
)
def test_a_status_list_that_cannot_be_trusted_leaves_the_status_unknown(
    tmp_path: Path,
    issuer: IssuerServer,
    credential: dict[str, Any],
    purpose: str,
    make: Any,
    problem: str,
) -> None:
    document = make(issuer, purpose)
    if document is None:
        del issuer.routes[issuer.list_url(purpose).removeprefix(issuer.base)]
    else:
        issuer.serve(issuer.list_url(purpose), document)
    result = run_verify(str(write(tmp_path, credential)))
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert out.startswith("GENUINE")
    assert f"STATUS UNKNOWN: {purpose} not read." in out
    assert f"{purpose} list {issuer.list_url(purpose)}, index" in out
    assert problem in out
    assert "revoked" not in out.replace("not revoked", "")


def test_a_credential_without_status_entries_has_an_unknown_status(
    tmp_path: Path, issuer: IssuerServer
) -> None:
    bare = build_credential(make_input(issuer_did=issuer.did, public_base_url=issuer.base))
    signed = issue_proof(bare, RING, issuer.did, SIGNED_AT)
    result = run_verify(str(write(tmp_path, signed)))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "STATUS UNKNOWN: suspension not read; revocation not read." in result.stdout
    assert "the credential names no status list" in result.stdout


def test_keys_by_url_are_online(
    tmp_path: Path, issuer: IssuerServer, credential: dict[str, Any]
) -> None:
    """A key set served elsewhere (here the same host) replaces the did:web resolution;
    the status lists are still read, and verified with those keys."""
    issuer.serve("/.well-known/mutabaqa-keys.json", RING.jwks())
    issuer.serve(
        issuer.list_url("suspension"), issuer.status_list("suspension", (SUSPENSION_INDEX,))
    )
    keys = f"{issuer.base}/.well-known/mutabaqa-keys.json"
    result = run_verify(str(write(tmp_path, credential)), "--keys", keys)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"(keys: {keys})" in result.stdout
    assert "NOT IN FORCE: suspended." in result.stdout
    assert "/.well-known/did.json" not in issuer.requested


def test_an_unresolvable_issuer_is_unreadable(
    tmp_path: Path, issuer: IssuerServer, credential: dict[str, Any]
) -> None:
    del issuer.routes["/.well-known/did.json"]
    result = run_verify(str(write(tmp_path, credential)))
    assert result.returncode == 3, result.stdout + result.stderr
    assert "UNREADABLE: cannot fetch the issuer's DID document" in result.stderr
    assert "HTTP 404" in result.stderr


# --- Offline: --keys FILE ------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["key set", "DID document"])
def test_offline_keys_check_the_proof_not_the_status(
    tmp_path: Path, issuer: IssuerServer, credential: dict[str, Any], kind: str
) -> None:
    saved = RING.jwks() if kind == "key set" else did_document(issuer.did, RING)
    keys = write(tmp_path, saved, "keys.json")
    # Even a revoked credential: offline, the lists are not read, and that is said.
    issuer.serve(
        issuer.list_url("revocation"), issuer.status_list("revocation", (REVOCATION_INDEX,))
    )
    result = run_verify(str(write(tmp_path, credential)), "--keys", str(keys))
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert out.startswith("GENUINE: the proof matches the contents.")
    assert f"(keys: {keys})" in out
    assert "STATUS NOT CHECKED: within its validity period; offline." in out
    assert "status lists not fetched (offline: --keys is a file)" in out
    assert issuer.list_url("revocation") in out
    assert "revoked" not in out
    assert issuer.requested == []  # nothing fetched at all

    changed = copy.deepcopy(credential)
    changed["validFrom"] = "2026-11-27T23:00:00Z"
    assert run_verify(str(write(tmp_path, changed)), "--keys", str(keys)).returncode == 1
    stranger = write(tmp_path, issuer.credential(ring=STRANGER), "stranger.json")
    assert run_verify(str(stranger), "--keys", str(keys)).returncode == 2


def test_a_did_document_of_another_did_is_no_key_of_the_issuer(
    tmp_path: Path, issuer: IssuerServer, credential: dict[str, Any]
) -> None:
    other = write(tmp_path, did_document("did:web:other.example.test", RING), "did.json")
    result = run_verify(str(write(tmp_path, credential)), "--keys", str(other))
    assert result.returncode == 2, result.stdout + result.stderr
    assert "did:web:other.example.test" in result.stdout


# --- Unreadable ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [
        b'{"@context": ["https://www.w3.org/ns/credentials/v2"], "type": ',
        b'{"@context": ["https://www.w3.org/2018/credentials/v1"], "type": []}',
        b'{"@context": ["https://www.w3.org/ns/credentials/v2"], '
        b'"type": ["VerifiableCredential", "DigitalConformityCredential"], '
        b'"issuer": "did:web:localhost%3A1", "credentialSubject": {}}',
        b'{"@context": ["https://www.w3.org/ns/credentials/v2"], '
        b'"type": ["VerifiableCredential", "DigitalConformityCredential"], '
        b'"issuer": "https://not.a.did", "credentialSubject": {}, '
        b'"proof": {"type": "DataIntegrityProof", "cryptosuite": "eddsa-jcs-2022"}}',
    ],
    ids=["truncated", "vc-1.1", "no-proof", "issuer-no-did"],
)
def test_garbage_is_unreadable(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "credential.json"
    path.write_bytes(content)
    result = run_verify(str(path))
    assert result.returncode == 3, result.stdout + result.stderr
    assert result.stderr.startswith("mutabaqa: UNREADABLE")
    assert "Traceback" not in result.stderr


def test_another_cryptosuite_is_unreadable(
    tmp_path: Path, issuer: IssuerServer, credential: dict[str, Any]
) -> None:
    other = copy.deepcopy(credential)
    other["proof"]["cryptosuite"] = "ecdsa-rdfc-2019"
    result = run_verify(str(write(tmp_path, other)))
    assert result.returncode == 3
    assert "cryptosuite 'ecdsa-rdfc-2019' is not supported" in result.stderr
