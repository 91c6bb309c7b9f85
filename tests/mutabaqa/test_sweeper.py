"""The orphan sweeper (``mutabaqa/sweeper.py``): objects no row names and unfinished
multipart uploads go once older than the grace period; recorded documents stay. Real S3
store and database; documents recorded through the API and the workflow."""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from minio import Minio
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from api.app import create_app
from models.requests import StoredFile
from mutabaqa.clients import make_object_store
from mutabaqa.settings import Settings
from mutabaqa.sweeper import sweep
from tests.api.requests_helpers import create_request, make_cast, upload_all
from tests.conftest import RunningWorker


@pytest.fixture(scope="module")
def client(settings: Settings, worker: RunningWorker) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def keys(store: Minio, bucket: str) -> set[str]:
    return {str(o.object_name) for o in store.list_objects(bucket, recursive=True)}


def unfinished(store: Minio, bucket: str) -> set[str]:
    return {str(u.upload_id) for u in store._list_multipart_uploads(bucket).uploads}


def test_orphans_go_after_the_grace_period_and_recorded_files_stay(
    client: TestClient, settings: Settings, engine: Engine
) -> None:
    cast = make_cast(client, settings)
    request = create_request(client, cast, key=uuid.uuid4().hex)
    upload_all(client, cast, request["id"])  # recorded by the workflow when answered
    with Session(engine) as session:
        recorded = {
            f.object_key
            for f in session.exec(
                select(StoredFile).where(StoredFile.request_id == request["id"])
            ).all()
        }
    assert len(recorded) == 4
    store = make_object_store(settings)
    bucket = settings.s3_evidence_bucket
    orphan = f"requests/{request['id']}/orphan-{uuid.uuid4().hex}"
    store.put_object(bucket, orphan, io.BytesIO(b"abandoned"), 9)
    upload_id = store._create_multipart_upload(bucket, f"{orphan}-multipart", {})

    # (The sweeps look under this request's prefix only: other tests' uploads and PDFs
    # may be between their put and their record right now.)
    mine = f"requests/{request['id']}/"
    # Within the grace period nothing goes.
    kept = sweep(settings, engine, store, timedelta(hours=1), prefix=mine)
    assert kept.removed == [] and kept.aborted == []
    assert orphan in keys(store, bucket) and upload_id in unfinished(store, bucket)

    # Past it, the orphan and the unfinished upload go; every recorded document stays.
    done = sweep(settings, engine, store, timedelta(0), prefix=mine)
    assert any(orphan in line for line in done.removed)
    assert any(upload_id in line for line in done.aborted)
    left = keys(store, bucket)
    assert orphan not in left and upload_id not in unfinished(store, bucket)
    assert recorded <= left
    assert not any(key in line for key in recorded for line in done.removed)
