"""The ``mutabaqa`` command: the embedded dev stack and the production processes."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Annotated, NoReturn

import typer

from mutabaqa.settings import Settings, SettingsError, load_settings

app = typer.Typer(
    help="Mutabaqa — conformity certification on durable workflows.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _settings(**overrides: object) -> Settings:
    try:
        return load_settings(**{k: v for k, v in overrides.items() if v is not None})
    except SettingsError as exc:
        typer.echo(f"mutabaqa: {exc}", err=True)
        raise typer.Exit(2) from None


def _fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"mutabaqa: {message}", err=True)
    raise typer.Exit(code)


def _sigterm_as_exit() -> None:
    """Make SIGTERM unwind like Ctrl-C so ``finally`` blocks stop child processes."""

    def handler(signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


@app.command()
def dev(
    data_dir: Annotated[Path, typer.Option(help="Where every service keeps its data.")] = Path(
        ".mutabaqa"
    ),
    host: Annotated[str, typer.Option(help="API bind address.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="API port.")] = 8000,
    temporal_port: Annotated[int, typer.Option(help="Temporal gRPC port.")] = 7233,
    temporal_ui_port: Annotated[int, typer.Option(help="Temporal Web UI port.")] = 8233,
    temporal_http_port: Annotated[int, typer.Option(help="Temporal HTTP API port.")] = 7243,
    temporal_metrics_port: Annotated[int, typer.Option(help="Temporal metrics port.")] = 7253,
    s3_port: Annotated[int, typer.Option(help="S3 API port.")] = 9000,
    s3_internal_port: Annotated[
        int, typer.Option(help="First of ten internal ports of the S3 store (master, filer...).")
    ] = 9330,
) -> None:
    """Run everything on this machine: Temporal, S3, SQLite, migrations, seed, worker and API.

    Services given by configuration (MUTABAQA_TEMPORAL_ADDRESS, MUTABAQA_S3_ENDPOINT,
    MUTABAQA_DATABASE_URL) are used instead of starting one. Ctrl-C stops everything.
    """
    from mutabaqa.dev import DevOptions, run_dev
    from mutabaqa.devstack import S3Ports, StackError, TemporalPorts

    settings = _settings(data_dir=data_dir, api_host=host, api_port=port)
    _sigterm_as_exit()
    options = DevOptions(
        temporal=TemporalPorts(
            temporal_port, temporal_ui_port, temporal_http_port, temporal_metrics_port
        ),
        s3=S3Ports(s3_port, s3_internal_port),
    )
    try:
        run_dev(settings, options)
    except StackError as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        pass


@app.command()
def api(
    host: Annotated[str | None, typer.Option(help="Bind address (MUTABAQA_API_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (MUTABAQA_API_PORT).")] = None,
) -> None:
    """Serve the HTTP API (stateless; run several behind a load balancer)."""
    from mutabaqa.serve import serve_api

    settings = _settings(api_host=host, api_port=port)
    asyncio.run(serve_api(settings, host=settings.api_host, port=settings.api_port))


@app.command()
def worker() -> None:
    """Run a Temporal worker for every workflow and activity (stateless; scale out)."""
    from mutabaqa.clients import make_object_store
    from mutabaqa.db import create_db_engine
    from mutabaqa.serve import serve_worker

    settings = _settings()
    engine = create_db_engine(settings.resolved_database_url)
    asyncio.run(serve_worker(settings, engine, make_object_store(settings)))


@app.command()
def migrate(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Apply the database migrations (Alembic) up to REVISION."""
    from mutabaqa.migrate import upgrade

    settings = _settings()
    upgrade(settings.resolved_database_url, revision)
    typer.echo(f"database at {revision}")


@app.command()
def seed() -> None:
    """Load the reference data (technical centres, schemes); safe to run again."""
    from mutabaqa.db import create_db_engine
    from mutabaqa.seed import seed as load

    settings = _settings()
    report = load(create_db_engine(settings.resolved_database_url))
    typer.echo(
        f"centres: {len(report.centres_created)} created, {len(report.centres_updated)} updated; "
        f"schemes: {len(report.schemes_created)} created"
    )
    for label in report.schemes_diverging:
        typer.echo(
            f"warning: stored scheme {label} differs from the reference file and was kept; "
            "publish the change as a new version",
            err=True,
        )


@app.command()
def audit() -> None:
    """Re-verify every audit chain; exit 1 naming the first broken link of each broken chain."""
    from sqlmodel import Session

    from activities.audit import verify_all
    from mutabaqa.db import create_db_engine

    settings = _settings()
    engine = create_db_engine(settings.resolved_database_url)
    with Session(engine) as session:
        checked, breaks = verify_all(session)
    for broken in breaks:
        typer.echo(f"BROKEN {broken}", err=True)
    if breaks:
        typer.echo(f"{len(breaks)} of {checked} chains broken", err=True)
        raise typer.Exit(1)
    typer.echo(f"{checked} chains verified, all intact")


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
