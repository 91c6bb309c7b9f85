"""The audit trail against someone who can write the database: keyed links, append-only rows
and signed checkpoints in the object-locked bucket (docs/audit.md).

Each test gets a database and an evidence bucket of its own (the attacks leave them
broken), on PostgreSQL and on SQLite. The attacker writes with plain SQL, dropping the
append-only triggers first, as someone with the database's owner rights would; they hold
neither the audit key nor the signing key, nor write access to the bucket.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from minio import Minio
from minio.error import S3Error
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from domain.audit_links import DEVELOPMENT_AUDIT_KEY, AuditKeys, keyed_link, plain_link
from domain.permissions import Actor, Role
from models.audit import AuditEvent, request_chain
from mutabaqa.anchoring import PREFIX, checkpoint_periodically
from mutabaqa.clients import make_object_store
from mutabaqa.db import create_db_engine, session_scope
from mutabaqa.migrate import upgrade
from mutabaqa.settings import Settings
from mutabaqa.signing import KeyRing
from records.audit import (
    append_event,
    canonical_bytes,
    current_keys,
    use_keys,
    verify_chain,
)
from tests.conftest import S3Server
from tests.databases import private_database

pytestmark = pytest.mark.both_databases

AUDIT_KEY = "test-audit-key-" + uuid.uuid4().hex


@dataclass
class Deployment:
    settings: Settings
    engine: Engine
    store: Minio


@pytest.fixture
def d(database: str, tmp_path: Path, s3_server: S3Server) -> Iterator[Deployment]:
    with private_database(database, tmp_path, "audit") as url:
        yield from _deployment(url, tmp_path, s3_server)


def _deployment(url: str, tmp_path: Path, s3_server: S3Server) -> Iterator[Deployment]:
    previous_keys = current_keys()
    settings = Settings(
        data_dir=tmp_path,
        database_url=url,
        s3_endpoint=s3_server.endpoint,
        s3_access_key=s3_server.access_key,
        s3_secret_key=s3_server.secret_key,
        s3_evidence_bucket=f"audit-{uuid.uuid4().hex[:12]}",
        audit_key=AUDIT_KEY,
    )
    os.environ["MUTABAQA_AUDIT_KEY"] = AUDIT_KEY  # the migration reads the settings
    try:
        upgrade(url)
    finally:
        del os.environ["MUTABAQA_AUDIT_KEY"]
    use_keys(settings.audit_keys())
    store = make_object_store(settings)
    store.make_bucket(settings.s3_evidence_bucket, object_lock=True)
    engine = create_db_engine(url)
    try:
        yield Deployment(settings, engine, store)
    finally:
        use_keys(previous_keys)
        engine.dispose()


def run_cli(d: Deployment, *args: str, key: str = AUDIT_KEY) -> subprocess.CompletedProcess[str]:
    s = d.settings
    env = {k: v for k, v in os.environ.items() if not k.startswith("MUTABAQA_")}
    env.update(
        MUTABAQA_ENV="development",  # the test deployment (signing key made on first use)
        MUTABAQA_DATA_DIR=str(s.data_dir),
        MUTABAQA_DATABASE_URL=s.resolved_database_url,
        MUTABAQA_S3_ENDPOINT=str(s.s3_endpoint),
        MUTABAQA_S3_ACCESS_KEY=s.s3_access_key,
        MUTABAQA_S3_SECRET_KEY=s.s3_secret_key.get_secret_value(),
        MUTABAQA_S3_EVIDENCE_BUCKET=s.s3_evidence_bucket,
        MUTABAQA_AUDIT_KEY=key,
    )
    return subprocess.run(
        [sys.executable, "-m", "mutabaqa", "audit", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def make_chain(engine: Engine, events: int) -> tuple[str, list[int]]:
    chain = request_chain(uuid.uuid4().hex)
    actor = Actor(user_id="u1", roles=(Role.COMPLIANCE_OFFICER,))
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


def drop_triggers(engine: Engine) -> None:
    """What an attacker with the owner's rights does first."""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("DROP TRIGGER audit_event_append_only ON audit_event")
        else:
            conn.exec_driver_sql("DROP TRIGGER audit_event_no_update")
            conn.exec_driver_sql("DROP TRIGGER audit_event_no_delete")


EVENT = AuditEvent.metadata.tables["audit_event"]
HEAD = sa.table("audit_chain_head", sa.column("chain"), sa.column("seq"), sa.column("hash"))


def events_of(conn: sa.Connection, chain: str) -> list[sa.RowMapping]:
    query = sa.select(EVENT).where(EVENT.c.chain == chain).order_by(EVENT.c.seq)
    return list(conn.execute(query).mappings())


def test_a_clean_record_verifies_against_a_locked_signed_checkpoint(d: Deployment) -> None:
    make_chain(d.engine, 3)
    make_chain(d.engine, 1)
    written = run_cli(d, "checkpoint")
    assert written.returncode == 0, written.stderr
    assert "2 chains" in written.stdout
    result = run_cli(d)
    assert result.returncode == 0, result.stderr
    assert "2 chains verified, all intact" in result.stdout
    assert "2 chains anchored" in result.stdout
    # Nothing moved: no new checkpoint.
    again = run_cli(d, "checkpoint")
    assert again.returncode == 0 and "no head moved" in again.stdout
    # The checkpoint is signed by the deployment's key and cannot be deleted.
    bucket = d.settings.s3_evidence_bucket
    (stored,) = d.store.list_objects(bucket, prefix=PREFIX)
    name = stored.object_name or ""
    document = json.loads(d.store.get_object(bucket, name).read())
    assert KeyRing.load(d.settings).verify(document["payload"], document["signature"])
    assert sorted(entry["seq"] for entry in document["payload"]["chains"]) == ["1", "3"]
    version = d.store.stat_object(bucket, name).version_id
    with pytest.raises(S3Error) as refused:
        d.store.remove_object(bucket, name, version_id=version)
    assert refused.value.code == "AccessDenied"
    # Hiding it behind a delete marker is seen, and the checkpoint is still used.
    d.store.remove_object(bucket, name)
    hidden = run_cli(d)
    assert hidden.returncode == 1
    assert f"BROKEN checkpoint {name} is hidden by a delete marker" in hidden.stderr
    assert "2 chains anchored" in hidden.stdout


def test_the_apps_connection_cannot_update_or_delete_audit_rows(d: Deployment) -> None:
    chain, ids = make_chain(d.engine, 2)
    for statement in (
        sa.update(EVENT).where(EVENT.c.id == ids[0]).values(detail={"n": 0, "note": "x"}),
        sa.delete(EVENT).where(EVENT.c.id == ids[1]),
    ):
        with pytest.raises(sa.exc.DBAPIError, match="append-only"), session_scope(d.engine) as s:
            s.execute(statement)
    with d.engine.connect() as conn:
        rows = events_of(conn, chain)
    assert [(r["id"], r["detail"]["note"]) for r in rows] == [
        (ids[0], "مطابقة"),
        (ids[1], "مطابقة"),
    ]
    make_chain(d.engine, 1)  # appending still works, and the trail is intact
    assert run_cli(d).returncode == 0


def test_an_edited_event_is_detected(d: Deployment) -> None:
    chain, ids = make_chain(d.engine, 4)
    drop_triggers(d.engine)
    with d.engine.begin() as conn:
        conn.execute(sa.update(EVENT).where(EVENT.c.id == ids[1]).values(detail={"n": 1}))
    result = run_cli(d)
    assert result.returncode == 1
    assert f"BROKEN chain {chain}: event #2 (id {ids[1]}): recorded fields differ" in result.stderr
    assert "1 of 1 chains broken" in result.stderr


def test_a_removed_event_is_detected(d: Deployment) -> None:
    chain, ids = make_chain(d.engine, 3)
    drop_triggers(d.engine)
    with d.engine.begin() as conn:
        conn.execute(sa.delete(EVENT).where(EVENT.c.id == ids[1]))
    result = run_cli(d)
    assert result.returncode == 1
    assert f"chain {chain}: event #3 (id {ids[2]}): sequence jumps from 1 to 3" in result.stderr


def test_a_consistently_rewritten_chain_is_detected_without_the_key(d: Deployment) -> None:
    """The attacker edits event #2 and recomputes every later link and the head, keeping the
    key id the rows show, but must guess the key (here: the development key)."""
    chain, ids = make_chain(d.engine, 4)
    guessed = DEVELOPMENT_AUDIT_KEY.encode()
    drop_triggers(d.engine)
    with d.engine.begin() as conn:
        rows = events_of(conn, chain)
        prev = rows[0]["hash"]
        for row in rows[1:]:
            fields = dict(row)
            if row["seq"] == 2:
                fields["detail"] = {"n": 1, "note": "rewritten"}
            canonical = canonical_bytes(fields)
            link = keyed_link(guessed, prev, canonical)
            conn.execute(
                sa.update(EVENT)
                .where(EVENT.c.id == row["id"])
                .values(
                    detail=fields["detail"],
                    canonical=canonical.decode(),
                    prev_hash=prev,
                    hash=link,
                )
            )
            prev = link
        conn.execute(sa.update(HEAD).where(HEAD.c.chain == chain).values(hash=prev))
    result = run_cli(d)
    assert result.returncode == 1
    assert (
        f"chain {chain}: event #2 (id {ids[1]}): link does not verify under the audit key"
        in result.stderr
    )


def test_a_truncated_chain_is_detected_against_the_checkpoint(d: Deployment) -> None:
    chain, ids = make_chain(d.engine, 4)
    assert run_cli(d, "checkpoint").returncode == 0
    drop_triggers(d.engine)
    with d.engine.begin() as conn:  # the last two events go, the head is set back
        second = events_of(conn, chain)[1]
        conn.execute(sa.delete(EVENT).where(EVENT.c.id.in_(ids[2:])))
        conn.execute(
            sa.update(HEAD).where(HEAD.c.chain == chain).values(seq=2, hash=second["hash"])
        )
    # What is left is a consistent chain: only the checkpoint shows what is missing.
    assert run_cli(d, "--skip-checkpoints").returncode == 0
    result = run_cli(d)
    assert result.returncode == 1
    assert f"chain {chain}: chain truncated: it ends at event #2" in result.stderr
    assert "lists event #4" in result.stderr
    # A later checkpoint does not seal the truncation: it keeps the chain's old anchor.
    later = run_cli(d, "checkpoint")
    assert later.returncode == 1 and f"chain {chain}" in later.stderr
    result = run_cli(d)
    assert result.returncode == 1 and "chain truncated" in result.stderr


def test_a_deleted_chain_is_detected_against_the_checkpoint(d: Deployment) -> None:
    kept, _ = make_chain(d.engine, 2)
    gone, _ = make_chain(d.engine, 3)
    assert run_cli(d, "checkpoint").returncode == 0
    drop_triggers(d.engine)
    with d.engine.begin() as conn:
        conn.execute(sa.delete(EVENT).where(EVENT.c.chain == gone))
        conn.execute(sa.delete(HEAD).where(HEAD.c.chain == gone))
    result = run_cli(d)
    assert result.returncode == 1
    assert f"chain {gone}: chain deleted: no events and no head" in result.stderr
    assert "at event #3" in result.stderr
    assert kept not in result.stderr
    assert "1 of 2 chains broken" in result.stderr


def test_a_forged_newer_checkpoint_is_reported_and_ignored(d: Deployment) -> None:
    """Someone with write access to the bucket (not to the signing key) adds a checkpoint
    that forgets a chain; it is not taken for the latest."""
    make_chain(d.engine, 2)
    assert run_cli(d, "checkpoint").returncode == 0
    name = f"{PREFIX}99991231T000000000000Z.json"
    forged = json.dumps(
        {
            "payload": {"type": "mutabaqa.audit-checkpoint.v1", "object": name, "chains": []},
            "signature": "A" * 86,
        }
    ).encode()
    d.store.put_object(d.settings.s3_evidence_bucket, name, io.BytesIO(forged), len(forged))
    result = run_cli(d)
    assert result.returncode == 1
    assert f"BROKEN checkpoint {name}" in result.stderr and "no valid signature" in result.stderr
    assert "1 chains anchored" in result.stdout


@pytest.mark.timers
def test_the_worker_loop_checkpoints_when_heads_move(d: Deployment) -> None:
    settings = d.settings.model_copy(update={"audit_checkpoint_interval_seconds": 0.3})
    bucket = settings.s3_evidence_bucket
    make_chain(d.engine, 1)

    def checkpoints() -> int:
        return len(list(d.store.list_objects(bucket, prefix=PREFIX)))

    async def scenario() -> tuple[int, int]:
        stop = asyncio.Event()
        ring = KeyRing.ensure(settings)
        loop = asyncio.create_task(checkpoint_periodically(settings, d.engine, d.store, ring, stop))
        await asyncio.sleep(1.0)
        first = checkpoints()  # one at start; no head moved since
        await asyncio.to_thread(make_chain, d.engine, 2)
        await asyncio.sleep(1.0)
        stop.set()
        await asyncio.wait_for(loop, 10)
        return first, checkpoints()

    first, second = asyncio.run(scenario())
    assert (first, second) == (1, 2)
    assert run_cli(d).stdout.startswith(f"checkpoint {PREFIX}")


def test_a_custom_key_is_what_links_new_events(d: Deployment) -> None:
    chain, _ = make_chain(d.engine, 1)
    with d.engine.connect() as conn:
        (row,) = events_of(conn, chain)
    keys = AuditKeys.from_secrets(AUDIT_KEY)
    assert row["link_key"] == keys.active_id
    assert keys.check(row["link_key"], row["prev_hash"], row["canonical"].encode(), row["hash"])
    # The same trail read with another key: every event is refused, none silently accepted.
    other_key = run_cli(d, "--skip-checkpoints", key=DEVELOPMENT_AUDIT_KEY)
    assert other_key.returncode == 1
    assert f"chain {chain}: event #1" in other_key.stderr
    assert "unknown audit key" in other_key.stderr


#: ``audit_event`` as revision 0007 left it (no ``link_key``).
OLD_EVENT = sa.table(
    "audit_event",
    *(sa.column(c.name, c.type) for c in EVENT.c if c.name not in ("id", "link_key")),
)


def _old_chain(url: str, chain: str, events: int, *, break_at: int | None = None) -> None:
    """Events as revision 0007 wrote them: plain SHA-256 links."""
    engine = sa.create_engine(url)
    prev = "0" * 64
    with engine.begin() as conn:
        for seq in range(1, events + 1):
            fields = {
                "chain": chain, "seq": seq, "at": datetime(2026, 1, 1, tzinfo=UTC),
                "actor_id": None, "actor_name": None, "actor_role": "system",
                "action": f"old-{seq}", "object_type": "request", "object_id": chain,
                "from_status": None, "to_status": None, "detail": {"n": seq},
            }  # fmt: skip
            canonical = canonical_bytes(fields)
            link = plain_link(prev, canonical)
            if seq == break_at:  # edited after it was linked, canonical form included
                fields["detail"] = {"n": -1}
                canonical = canonical_bytes(fields)
            row = {**fields, "canonical": canonical.decode(), "prev_hash": prev, "hash": link}
            conn.execute(OLD_EVENT.insert().values(**row))
            prev = link
        conn.execute(HEAD.insert().values(chain=chain, seq=events, hash=prev))
    engine.dispose()


def test_the_migration_relinks_old_chains_under_the_key(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    upgrade(url, "0007")
    _old_chain(url, "request:old", 3)
    previous = current_keys()
    os.environ["MUTABAQA_AUDIT_KEY"] = AUDIT_KEY
    try:
        upgrade(url)
        use_keys(AuditKeys.from_secrets(AUDIT_KEY))
        engine = create_db_engine(url)
        with Session(engine) as session:
            assert verify_chain(session, "request:old") is None
            links = session.exec(select(AuditEvent.link_key)).all()
        engine.dispose()
    finally:
        del os.environ["MUTABAQA_AUDIT_KEY"]
        use_keys(previous)
    assert links == [AuditKeys.from_secrets(AUDIT_KEY).active_id] * 3


def test_the_migration_refuses_to_relink_a_broken_chain(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    upgrade(url, "0007")
    _old_chain(url, "request:tampered", 3, break_at=2)
    with pytest.raises(RuntimeError, match=r"audit chain request:tampered is broken at event #2"):
        upgrade(url)
