"""Checks of the stack's dependencies, shared by ``GET /health`` and the canary workflow's
activity."""

from __future__ import annotations

from minio import Minio
from sqlalchemy.engine import Engine

from models.system import CheckStatus
from mutabaqa.db import ping


def check_database(engine: Engine) -> tuple[CheckStatus, str | None]:
    try:
        ping(engine)
    except Exception as exc:
        return "down", f"{type(exc).__name__}: {exc}"[:300]
    return "ok", None


def check_object_store(store: Minio, bucket: str) -> tuple[CheckStatus, str | None]:
    try:
        if not store.bucket_exists(bucket):
            return "down", f"bucket {bucket!r} does not exist"
    except Exception as exc:
        return "down", f"{type(exc).__name__}: {exc}"[:300]
    return "ok", None
