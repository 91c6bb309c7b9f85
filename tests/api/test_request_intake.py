"""The first half of the request lifecycle through the HTTP API only, on PostgreSQL, a real
Temporal server and a real S3 store."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import httpx
import pytest
from fastapi.testclient import TestClient
from minio import Minio
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from api.app import create_app
from models.audit import request_chain
from models.requests import StoredFile
from mutabaqa.settings import Settings
from records.audit import verify_chain
from tests.api.helpers import API
from tests.api.requests_helpers import (
    FFP2_DOCUMENTS,
    PDF,
    Cast,
    act,
    create_request,
    get,
    make_cast,
    upload,
    upload_all,
    wait_status,
)
from tests.conftest import RunningWorker
from tests.smtp import SmtpSink

#: End-to-end paths: on SQLite (the embedded default) and on PostgreSQL.
pytestmark = pytest.mark.both_databases


@pytest.fixture
def client(settings: Settings, worker: RunningWorker) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture
def cast(client: TestClient, settings: Settings) -> Cast:
    return make_cast(client, settings)


def test_draft_to_sample_receipt(
    client: TestClient, cast: Cast, settings: Settings, engine: Engine, mailbox: SmtpSink
) -> None:
    request = create_request(client, cast)
    rid = request["id"]
    assert request["status"] == "draft"
    assert request["number"].startswith("REQ-")
    assert "upload_document" in request["allowed_actions"]
    assert "submit" not in request["allowed_actions"]  # documents are missing

    refused = act(client, cast.maker_auth, rid, "submit")
    assert refused.status_code == 409
    assert refused.json()["type"].endswith("/missing-documents")
    assert refused.json()["request_status"] == "draft"

    upload_all(client, cast, rid)
    draft = get(client, cast.maker_auth, rid)
    assert sorted(d["kind"] for d in draft["documents"]) == sorted(FFP2_DOCUMENTS)
    assert "submit" in draft["allowed_actions"]

    assert act(client, cast.maker_auth, rid, "submit").status_code == 200
    review = wait_status(client, cast.officer_auth, rid, "application_review")
    assert review["proposed_centre"] == "CTTH"  # the only centre serving ppe_textile
    assert set(review["allowed_actions"]) >= {"request_info", "accept", "decline"}

    asked = act(
        client,
        cast.officer_auth,
        rid,
        "request_info",
        {"message": "Please send the updated technical file."},
    )
    assert asked.status_code == 200, asked.text
    assert asked.json()["status"] == "info_requested"
    assert asked.json()["info_due_at"] is not None

    new_file = PDF + b"% revision 2\n"
    assert (
        upload(
            client, cast.maker_auth, rid, "technical_file", new_file, "technical_file_v2.pdf"
        ).status_code
        == 201
    )
    answered = act(client, cast.maker_auth, rid, "respond", {"message": "Updated file sent."})
    assert answered.status_code == 200, answered.text
    assert answered.json()["status"] == "application_review"
    files = [d for d in answered.json()["documents"] if d["kind"] == "technical_file"]
    assert len(files) == 2  # the superseded one is kept
    assert [f["superseded_at"] is None for f in files] == [False, True]
    assert files[1]["sha256"] == hashlib.sha256(new_file).hexdigest()

    accepted = act(client, cast.officer_auth, rid, "accept", {})
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["status"] == "awaiting_sample"
    assert accepted.json()["centre"] == "CTTH"

    rejected = act(
        client, cast.tech_auth, rid, "reject_sample", {"reason": "Packaging torn, masks exposed."}
    )
    assert rejected.status_code == 200, rejected.text
    assert rejected.json()["status"] == "awaiting_sample"
    received = act(
        client,
        cast.tech_auth,
        rid,
        "receive_sample",
        {"sample_ref": "CTTH-S-0001", "condition": "Sealed, 20 masks"},
    )
    assert received.status_code == 200, received.text
    done = received.json()
    assert done["status"] == "testing"
    assert [(s["status"], s["round"]) for s in done["samples"]] == [
        ("rejected", 1),
        ("received", 1),
    ]

    # The timeline tells the story; the manufacturer sees roles, staff see names.
    staff_view = client.get(f"{API}/requests/{rid}/timeline", headers=cast.officer_auth).json()
    actions = [item["action"] for item in staff_view["items"]]
    assert actions == [
        "create",
        *["upload_document"] * 4,
        "submit",
        "intake",
        "request_info",
        "upload_document",
        "respond",
        "accept",
        "reject_sample",
        "receive_sample",
    ]
    by_action = {item["action"]: item for item in staff_view["items"]}
    assert by_action["accept"]["actor"] == cast.officer["full_name"]
    assert by_action["reject_sample"]["detail"]["reason"] == "Packaging torn, masks exposed."
    maker_view = client.get(f"{API}/requests/{rid}/timeline", headers=cast.maker_auth).json()
    names = {item["actor"] for item in maker_view["items"]}
    assert cast.officer["full_name"] not in names and cast.tech["full_name"] not in names
    assert "compliance_officer" in names and "lab_technician" in names

    with Session(engine) as session:
        assert verify_chain(session, request_chain(rid)) is None

    # The manufacturer was told whenever it had to act or a decision was taken.
    number = done["number"]

    def kinds() -> list[str]:
        return [
            m.message["X-Mutabaqa-Notification"]
            for m in mailbox.messages
            if m.message["X-Mutabaqa-Request"] == number and m.rcpt_tos == [cast.maker["email"]]
        ]

    mailbox.wait_for(lambda mails: len(kinds()) >= 3, timeout=30)
    assert sorted(kinds()) == ["accepted", "info_requested", "sample_rejected"]
    # Numbers restart per database: the recipient (a user of this test) tells ours apart.
    mails = [
        m
        for m in mailbox.messages
        if m.message["X-Mutabaqa-Request"] == number and m.rcpt_tos == [cast.maker["email"]]
    ]
    info = next(m for m in mails if m.message["X-Mutabaqa-Notification"] == "info_requested")
    assert "Please send the updated technical file." in info.body
    rejected_mail = next(
        m for m in mails if m.message["X-Mutabaqa-Notification"] == "sample_rejected"
    )
    assert "Packaging torn" in rejected_mail.body


def test_recorded_sha256_matches_the_object_behind_the_presigned_url(
    client: TestClient, cast: Cast, engine: Engine, store: Minio
) -> None:
    request = create_request(client, cast)
    content = PDF + b"%" + b"x" * 200_000 + b"\n"
    response = upload(client, cast.maker_auth, request["id"], "technical_file", content)
    assert response.status_code == 201, response.text
    document = response.json()
    with Session(engine) as session:
        row = session.exec(select(StoredFile).where(StoredFile.id == document["id"])).one()
    url = store.presigned_get_object(
        row.bucket,
        row.object_key,
        version_id=row.version_id,
    )
    fetched = httpx.get(url, timeout=30).content
    assert hashlib.sha256(fetched).hexdigest() == document["sha256"] == row.sha256
    assert row.retention_until is not None


def test_declared_pdf_that_is_not_one_is_refused(client: TestClient, cast: Cast) -> None:
    request = create_request(client, cast)
    response = upload(
        client,
        cast.maker_auth,
        request["id"],
        "technical_file",
        b"MZ\x90\x00 this is an executable",
        "dossier.pdf",
    )
    assert response.status_code == 415
    assert response.headers["content-type"] == "application/problem+json"
    assert get(client, cast.maker_auth, request["id"])["documents"] == []


def test_upload_refused_on_state_before_the_body_is_read(client: TestClient, cast: Cast) -> None:
    request = create_request(client, cast)
    assert act(client, cast.maker_auth, request["id"], "withdraw", {}).status_code == 200
    response = upload(client, cast.maker_auth, request["id"], "technical_file")
    assert response.status_code == 409
    assert response.json()["request_status"] == "withdrawn"


def test_other_tenants_get_404_and_wrong_roles_403(client: TestClient, cast: Cast) -> None:
    request = create_request(client, cast)
    rid = request["id"]
    assert client.get(f"{API}/requests/{rid}", headers=cast.other_maker_auth).status_code == 404
    assert act(client, cast.other_maker_auth, rid, "submit").status_code == 404
    # A technician sees nothing before accept; the officer cannot see drafts.
    assert client.get(f"{API}/requests/{rid}", headers=cast.tech_auth).status_code == 404
    assert client.get(f"{API}/requests/{rid}", headers=cast.officer_auth).status_code == 404
    # Roles decide 403 before anything about the request is revealed.
    assert act(client, cast.maker_auth, rid, "accept").status_code == 403
    assert act(client, cast.officer_auth, "no-such-request", "accept").status_code == 404
    assert act(client, cast.maker_auth, rid, "fly").status_code == 404
