"""Signed checkpoints of the audit chains' heads, kept in the object-locked evidence bucket.

A checkpoint lists every chain's head (name, last event's number, its link) at one moment,
signed with the certificate signing key (Ed25519, ``mutabaqa/signing.py``) and stored under
``audit-checkpoints/<UTC time>.json`` with a retention lock. The database holds neither
the signing key nor the checkpoints, so someone who can only write the database cannot
make ``mutabaqa audit`` forget a chain's last events, a deleted chain or a chain rewritten
before the checkpoint. docs/audit.md says what this promises and what it does not.

The worker writes one every ``MUTABAQA_AUDIT_CHECKPOINT_INTERVAL_SECONDS`` (when a head
has moved); ``mutabaqa audit checkpoint`` writes one at once (an operator, cron).
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import urllib3
from minio import Minio
from minio.commonconfig import GOVERNANCE
from minio.error import S3Error
from minio.retention import Retention
from sqlalchemy.engine import Engine
from sqlmodel import Session

from mutabaqa.db import session_scope
from mutabaqa.settings import Settings
from mutabaqa.signing import KeyRing
from records.audit import Anchor, BrokenLink, Head, heads_to_anchor, use_keys

log = logging.getLogger(__name__)

#: What an unreachable or refusing object store raises.
STORE_ERRORS = (S3Error, OSError, urllib3.exceptions.HTTPError)

PREFIX = "audit-checkpoints/"
KIND = "mutabaqa.audit-checkpoint.v1"


def install_audit_keys(settings: Settings) -> None:
    """Make this process link and verify audit events with the configured keys."""
    use_keys(settings.audit_keys())


@dataclass(frozen=True)
class Checkpoint:
    name: str
    at: datetime
    anchors: dict[str, Anchor]


@dataclass
class CheckpointReading:
    """The latest genuine checkpoint (None when there is none) and what looked wrong in the
    bucket on the way (forged or damaged objects, delete markers hiding checkpoints)."""

    latest: Checkpoint | None = None
    problems: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class CheckpointWrite:
    """What ``write_checkpoint`` did: the object written (None when no head had moved since
    the latest checkpoint), the chains it lists, and the chains whose previous anchor was
    carried forward because their record looked tampered."""

    name: str | None
    chains: int
    problems: list[BrokenLink]


def object_name(at: datetime) -> str:
    return f"{PREFIX}{at.astimezone(UTC):%Y%m%dT%H%M%S%fZ}.json"


def _parse(name: str, data: bytes, ring: KeyRing) -> Checkpoint | None:
    """The checkpoint in ``data`` when it is genuine: a valid signature by a key of the ring,
    of a checkpoint that names this very object (so a genuine old checkpoint copied under a
    newer name is not taken for a newer one)."""
    try:
        document = json.loads(data)
        payload, signature = document["payload"], document["signature"]
        if not (isinstance(payload, dict) and isinstance(signature, str)):
            return None
        if payload.get("type") != KIND or payload.get("object") != name:
            return None
        if not ring.verify(payload, signature):
            return None
        anchors = {
            entry["chain"]: Anchor(int(entry["seq"]), entry["link"], name)
            for entry in payload["chains"]
        }
        return Checkpoint(name, datetime.fromisoformat(payload["at"]), anchors)
    except (ValueError, KeyError, TypeError):
        return None


def read_latest(store: Minio, bucket: str, ring: KeyRing) -> CheckpointReading:
    """Find the newest genuine checkpoint, looking at every stored version (a delete marker
    hides an object but, under object lock, cannot remove it)."""
    reading = CheckpointReading()
    versions: dict[str, list[str | None]] = {}
    for item in store.list_objects(bucket, prefix=PREFIX, recursive=True, include_version=True):
        name = item.object_name or ""
        if item.is_delete_marker:
            reading.problems.append(f"checkpoint {name} is hidden by a delete marker")
            continue
        versions.setdefault(name, []).append(item.version_id)
    for name in sorted(versions, reverse=True):
        found = None
        for version in versions[name]:
            response = store.get_object(bucket, name, version_id=version)
            try:
                data = response.read()
            finally:
                response.close()
                response.release_conn()
            checkpoint = _parse(name, data, ring)
            if checkpoint is None:
                reading.problems.append(
                    f"checkpoint {name} (version {version}) has no valid signature "
                    "(forged or damaged)"
                )
            elif found is None:
                found = checkpoint
        if found is not None:
            reading.latest = found
            break
    return reading


def _payload(name: str, at: datetime, previous: str, heads: list[Head]) -> dict[str, object]:
    return {
        "type": KIND,
        "at": at.isoformat(),
        "object": name,
        "previous": previous,
        "chains": [{"chain": h.chain, "seq": str(h.seq), "link": h.link} for h in heads],
    }


def write_checkpoint(
    settings: Settings,
    engine: Engine,
    store: Minio,
    ring: KeyRing,
    *,
    now: datetime | None = None,
) -> CheckpointWrite:
    """Sign and store a checkpoint of every chain's head, unless nothing moved since the
    latest one. Heads that look tampered keep their previous anchor (see
    ``records.audit.heads_to_anchor``) and are returned as problems."""
    bucket = settings.s3_evidence_bucket
    previous = read_latest(store, bucket, ring).latest
    anchors: Mapping[str, Anchor] = previous.anchors if previous else {}
    # A write transaction: on SQLite it also keeps appends out while the heads are read.
    with session_scope(engine) as session:
        heads, problems = heads_to_anchor(session, anchors)
    unchanged = {h.chain: (h.seq, h.link) for h in heads} == {
        chain: (a.seq, a.link) for chain, a in anchors.items()
    }
    if previous is not None and unchanged and not problems:
        return CheckpointWrite(None, len(heads), problems)
    at = now or datetime.now(UTC)
    name = object_name(at)
    signed = ring.sign(_payload(name, at, previous.name if previous else "", heads))
    data = json.dumps(
        {"payload": signed.payload, "signature": signed.signature}, ensure_ascii=False
    ).encode("utf-8")
    result = store.put_object(
        bucket, name, io.BytesIO(data), len(data), content_type="application/json"
    )
    until = at + timedelta(days=settings.retention_days)
    store.set_object_retention(
        bucket, name, Retention(GOVERNANCE, until), version_id=result.version_id
    )
    return CheckpointWrite(name, len(heads), problems)


def verify_record(engine: Engine, reading: CheckpointReading) -> tuple[int, list[BrokenLink]]:
    """Verify every chain of the record against the latest checkpoint (if any)."""
    from records.audit import verify_all

    anchors = reading.latest.anchors if reading.latest else {}
    with Session(engine) as session:
        return verify_all(session, anchors)


async def checkpoint_periodically(
    settings: Settings, engine: Engine, store: Minio, ring: KeyRing, stop: asyncio.Event
) -> None:
    """The worker's checkpoints: one at start, then one per interval, until ``stop``.
    Failures are logged and retried at the next interval; they never stop the worker."""
    interval = settings.audit_checkpoint_interval_seconds
    if interval <= 0:
        return
    while not stop.is_set():
        try:
            written = await asyncio.to_thread(write_checkpoint, settings, engine, store, ring)
            for problem in written.problems:
                log.error("audit checkpoint: %s (previous anchor kept)", problem)
            if written.name:
                log.info("audit checkpoint %s: %d chains", written.name, written.chains)
        except (*STORE_ERRORS, ValueError) as exc:
            log.warning("audit checkpoint not written: %s", exc)
        except Exception:
            log.exception("audit checkpoint not written")
        try:
            await asyncio.wait_for(stop.wait(), timeout=interval)
        except TimeoutError:
            continue
