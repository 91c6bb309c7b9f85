"""``mutabaqa audit`` re-verifies every chain and names the first broken link."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from domain.permissions import Actor, Role
from models.audit import AuditEvent, request_chain
from mutabaqa.db import session_scope
from mutabaqa.settings import Settings
from records.audit import append_event


def run_audit(settings: Settings) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MUTABAQA_")}
    env["MUTABAQA_DATABASE_URL"] = settings.resolved_database_url
    return subprocess.run(
        [sys.executable, "-m", "mutabaqa", "audit"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _chain(engine: Engine, events: int) -> tuple[str, list[int]]:
    chain = request_chain(uuid.uuid4().hex)
    actor = Actor(
        user_id="u1",
        roles=(Role.COMPLIANCE_OFFICER,),
    )
    ids = []
    with session_scope(engine) as session:
        for n in range(events):
            event = append_event(
                session,
                chain=chain,
                actor=actor,
                actor_role="compliance_officer",
                action=f"step-{n}",
                object_type="request",
                object_id=chain,
                detail={"n": n, "note": "مطابقة"},
            )
            assert event.id is not None
            ids.append(event.id)
    return chain, ids


def test_intact_chains_verify(settings: Settings, engine: Engine) -> None:
    _chain(engine, 3)
    result = run_audit(settings)
    assert result.returncode == 0, result.stderr
    assert "all intact" in result.stdout


def test_a_tampered_event_is_named(settings: Settings, engine: Engine) -> None:
    chain, ids = _chain(engine, 4)
    with engine.begin() as conn:  # someone edits the record behind the system's back
        conn.execute(
            sa.update(AuditEvent)
            .where(AuditEvent.id == ids[2])  # type: ignore[arg-type]
            .values(detail={"n": 2, "note": "edited"})
        )
    result = run_audit(settings)
    assert result.returncode == 1
    assert f"chain {chain}: event #3 (id {ids[2]})" in result.stderr
    # Repair, so the rest of the session's audit runs see intact chains again.
    with engine.begin() as conn:
        conn.execute(
            sa.update(AuditEvent)
            .where(AuditEvent.id == ids[2])  # type: ignore[arg-type]
            .values(detail={"n": 2, "note": "مطابقة"})
        )
    assert run_audit(settings).returncode == 0


def test_a_deleted_event_is_detected(settings: Settings, engine: Engine) -> None:
    chain, ids = _chain(engine, 3)
    with engine.begin() as conn:
        row = (
            conn.execute(sa.select(AuditEvent.__table__).where(AuditEvent.__table__.c.id == ids[1]))
            .mappings()
            .one()
        )
        conn.execute(sa.delete(AuditEvent).where(AuditEvent.id == ids[1]))  # type: ignore[arg-type]
    result = run_audit(settings)
    assert result.returncode == 1
    assert f"chain {chain}" in result.stderr and "removed" in result.stderr
    with engine.begin() as conn:
        conn.execute(sa.insert(AuditEvent.__table__).values(**row))
    assert run_audit(settings).returncode == 0
