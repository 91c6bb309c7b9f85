"""Checks of the stack's dependencies, shared by ``GET /health`` and the canary workflow."""

from __future__ import annotations

from minio import Minio
from sqlalchemy.engine import Engine
from temporalio import activity

from models.system import StackCheckResult
from mutabaqa.checks import check_database, check_object_store


class SystemActivities:
    def __init__(self, engine: Engine, store: Minio, evidence_bucket: str) -> None:
        self._engine = engine
        self._store = store
        self._bucket = evidence_bucket

    @activity.defn(name="check_stack")
    def check_stack(self) -> StackCheckResult:
        database, db_error = check_database(self._engine)
        object_store, s3_error = check_object_store(self._store, self._bucket)
        errors = {
            name: error
            for name, error in (("database", db_error), ("object_store", s3_error))
            if error
        }
        return StackCheckResult(database=database, object_store=object_store, errors=errors)
