"""A minimal API exposing the upload engine, for ``bench/upload.py`` (run as a child process).

``python bench/upload_app.py PORT``: settings from ``MUTABAQA_*`` variables; one route,
``POST /upload?key=...``, streams the form's ``file`` into the evidence bucket at ``key``.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI, Request

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from api.problems import install_problem_handlers
from api.uploads import receive_upload
from mutabaqa.clients import make_object_store
from mutabaqa.settings import Settings


def create_app() -> FastAPI:
    settings = Settings()
    store = make_object_store(settings)
    app = FastAPI()
    install_problem_handlers(app)

    @app.post("/upload", status_code=201)
    async def upload(request: Request, key: str) -> dict[str, Any]:
        stored = await receive_upload(
            request,
            store=store,
            bucket=settings.s3_evidence_bucket,
            key_for=lambda _filename: key,
            max_bytes=settings.max_upload_bytes,
            part_size=settings.upload_part_size,
        )
        return dataclasses.asdict(stored)

    return app


if __name__ == "__main__":
    uvicorn.run(create_app(), host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
