"""``record_file`` checks the stored object against the upload before recording it: a file
that is not in the store is refused for good (``object-mismatch``, not retried), while a
store that cannot be reached is the store's failure, retried, never a refusal of the file.
(The fault suite found an S3 store stopped for a few seconds refusing good uploads.)"""

from __future__ import annotations

import io
import uuid
from datetime import UTC, datetime

import pytest
from minio import Minio
from sqlalchemy.engine import Engine
from temporalio.exceptions import ApplicationError

from activities.errors import OBJECT_MISMATCH
from activities.stored_objects import verify_stored_object
from domain.permissions import Actor, Role
from domain.statuses import RequestStatus
from models.request_payloads import FileFacts, RecordFileInput
from mutabaqa.clients import make_object_store
from mutabaqa.devstack import free_port
from mutabaqa.settings import Settings


def _input(bucket: str, key: str, version_id: str | None) -> RecordFileInput:
    return RecordFileInput(
        request_id=uuid.uuid4().hex,
        key=f"upload:{uuid.uuid4().hex}",
        actor=Actor(user_id=uuid.uuid4().hex, roles=(Role.MANUFACTURER,)),
        acting_role="manufacturer",
        status=RequestStatus.DRAFT,
        purpose="document",
        file=FileFacts(
            file_id=uuid.uuid4().hex,
            bucket=bucket,
            key=key,
            version_id=version_id,
            size=4,
            sha256="0" * 64,
            content_type="application/pdf",
            filename="f.pdf",
        ),
        at=datetime.now(UTC),
    )


def test_an_object_missing_from_the_store_is_refused_for_good(
    settings: Settings, engine: Engine, store: Minio
) -> None:
    data = _input(settings.s3_evidence_bucket, f"requests/none/{uuid.uuid4().hex}.pdf", None)
    with pytest.raises(ApplicationError) as refused:
        verify_stored_object(store, data.file)
    assert refused.value.type == OBJECT_MISMATCH and refused.value.non_retryable


def test_a_store_that_cannot_be_reached_is_retried_not_a_refusal(
    settings: Settings, engine: Engine, store: Minio
) -> None:
    key = f"requests/verify/{uuid.uuid4().hex}.pdf"
    written = store.put_object(settings.s3_evidence_bucket, key, io.BytesIO(b"%PDF"), 4)
    down = make_object_store(
        settings.model_copy(update={"s3_endpoint": f"http://127.0.0.1:{free_port()}"}),
        timeout=2.0,
        retries=0,
    )
    with pytest.raises(Exception) as failed:
        verify_stored_object(
            down, _input(settings.s3_evidence_bucket, key, written.version_id).file
        )
    assert not isinstance(failed.value, ApplicationError), failed.value
