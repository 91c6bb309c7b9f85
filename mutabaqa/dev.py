"""``mutabaqa dev``: the whole product on one machine, data kept in one directory."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import typer

from mutabaqa.clients import ensure_buckets, make_object_store
from mutabaqa.db import create_db_engine
from mutabaqa.devstack import ChildProcess, S3Ports, TemporalPorts, start_s3, start_temporal
from mutabaqa.migrate import upgrade
from mutabaqa.seed import seed
from mutabaqa.serve import serve_all
from mutabaqa.settings import Settings
from workflows import search_attributes


@dataclass(frozen=True)
class DevOptions:
    temporal: TemporalPorts = field(default_factory=TemporalPorts)
    s3: S3Ports = field(default_factory=S3Ports)


def _say(message: str) -> None:
    typer.echo(message, err=True)


def run_dev(settings: Settings, options: DevOptions) -> None:
    """Start what is missing, prepare the data, serve until SIGINT/SIGTERM, stop children."""
    data_dir = settings.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    settings = settings.model_copy(update={"data_dir": data_dir})
    children: list[ChildProcess] = []
    try:
        ui_url = None
        if not settings.temporal_address:
            _say("starting Temporal dev server...")
            children.append(start_temporal(data_dir, options.temporal, search_attributes.ALL))
            settings = settings.model_copy(
                update={"temporal_address": f"127.0.0.1:{options.temporal.grpc}"}
            )
            ui_url = f"http://127.0.0.1:{options.temporal.ui}"
        if not settings.s3_endpoint:
            _say("starting S3 store...")
            settings = settings.model_copy(
                update={"s3_endpoint": f"http://127.0.0.1:{options.s3.s3}"}
            )
            probe = make_object_store(settings, timeout=2.0, retries=0)
            children.append(
                start_s3(
                    data_dir,
                    options.s3,
                    settings.s3_access_key,
                    settings.s3_secret_key.get_secret_value(),
                    ready=lambda: probe.list_buckets() is not None,
                )
            )
        store = make_object_store(settings)
        ensure_buckets(store, settings)
        upgrade(settings.resolved_database_url)
        engine = create_db_engine(settings.resolved_database_url)
        report = seed(engine)
        base = f"http://{settings.api_host}:{settings.api_port}"
        admin = f"{settings.admin_email} / {settings.admin_password.get_secret_value()}"
        _say(
            "\nMutabaqa is running\n"
            f"  API docs     {base}/docs\n"
            f"  health       {base}/health\n"
            + (f"  Temporal UI  {ui_url}\n" if ui_url else "")
            + f"  Temporal     {settings.resolved_temporal_address}"
            f" (namespace {settings.temporal_namespace})\n"
            f"  S3           {settings.resolved_s3_endpoint}"
            f" (access key {settings.s3_access_key})\n"
            f"  database     {settings.resolved_database_url}\n"
            f"  admin login  {admin}\n"
            f"  data         {data_dir}"
            + (" (reference data seeded)" if report.changed else "")
            + "\nPress Ctrl-C to stop.\n"
        )
        try:
            asyncio.run(
                serve_all(settings, engine, store, host=settings.api_host, port=settings.api_port)
            )
        finally:
            engine.dispose()
    finally:
        for child in reversed(children):
            _say(f"stopping {child.name} (pid {child.pid})...")
            child.stop()
        _say("stopped.")
