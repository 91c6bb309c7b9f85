"""``mutabaqa audit`` over the session's whole record: every chain the suite wrote so far
verifies under the audit key and against the latest checkpoint. The attacks are in
``test_audit_anchoring.py``, each on a database of its own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

from sqlalchemy.engine import Engine

from domain.permissions import Actor, Role
from models.audit import request_chain
from mutabaqa.db import session_scope
from mutabaqa.settings import Settings
from records.audit import append_event
from tests.mutabaqa.test_audit_anchoring import AUDIT_KEY as ANCHORING_TEST_KEY


def run_audit(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MUTABAQA_")}
    env.update(
        MUTABAQA_ENV="development",  # the test deployment (signing key made on first use)
        MUTABAQA_DATA_DIR=str(settings.data_dir),
        MUTABAQA_DATABASE_URL=settings.resolved_database_url,
        MUTABAQA_S3_ENDPOINT=str(settings.s3_endpoint),
        MUTABAQA_S3_ACCESS_KEY=settings.s3_access_key,
        MUTABAQA_S3_SECRET_KEY=settings.s3_secret_key.get_secret_value(),
        MUTABAQA_S3_EVIDENCE_BUCKET=settings.s3_evidence_bucket,
        # Audit keys are the process's: while ``test_audit_anchoring.py`` has its own key
        # installed, the session's in-process worker links any event it writes (a
        # certificate's timer firing) with that key. It is one of this process's keys.
        MUTABAQA_AUDIT_RETIRED_KEYS=json.dumps([ANCHORING_TEST_KEY]),
    )
    return subprocess.run(
        [sys.executable, "-m", "mutabaqa", "audit", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_sessions_record_verifies_and_is_anchored(settings: Settings, engine: Engine) -> None:
    chain = request_chain(uuid.uuid4().hex)
    actor = Actor(user_id="u1", roles=(Role.COMPLIANCE_OFFICER,))
    with session_scope(engine) as session:
        for n in range(3):
            append_event(
                session,
                chain=chain,
                actor=actor,
                actor_role="compliance_officer",
                action=f"step-{n}",
                object_type="request",
                object_id=chain,
                detail={"n": n, "note": "مطابقة"},
            )
    written = run_audit(settings, "checkpoint")
    assert written.returncode == 0, written.stderr
    result = run_audit(settings)
    assert result.returncode == 0, result.stderr
    assert "all intact" in result.stdout
    assert "chains anchored" in result.stdout


def test_without_the_object_store_the_audit_says_so(settings: Settings) -> None:
    unreachable = settings.model_copy(update={"s3_endpoint": "http://127.0.0.1:9"})
    result = run_audit(unreachable)
    assert result.returncode == 2
    assert "cannot read the audit checkpoints" in result.stderr
    assert "--skip-checkpoints" in result.stderr
    alone = run_audit(unreachable, "--skip-checkpoints")
    assert alone.returncode == 0, alone.stderr
    assert "all intact" in alone.stdout
