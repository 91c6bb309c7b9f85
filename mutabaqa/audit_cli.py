"""``mutabaqa audit``: verify the audit trail; ``mutabaqa audit checkpoint``: anchor it."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from mutabaqa.cli_support import fail as _fail
from mutabaqa.cli_support import settings as _settings
from mutabaqa.settings import Settings, SettingsError

audit_app = typer.Typer(
    help="The audit trail: verify every chain (default) or write a signed checkpoint.",
)


def _audit_context() -> tuple[Settings, Any, Any, Any]:
    """Settings, database engine, object store and key ring for the audit commands, with
    the process's audit keys installed."""
    from mutabaqa.anchoring import install_audit_keys
    from mutabaqa.clients import make_object_store
    from mutabaqa.db import create_db_engine
    from mutabaqa.signing import KeyRing

    settings = _settings(("audit_key", "s3_secret_key"))
    install_audit_keys(settings)
    try:
        ring = KeyRing.ensure(settings)
    except SettingsError as exc:
        _fail(f"{exc} (the audit checkpoints are signed with the certificate signing key)", 2)
    engine = create_db_engine(settings.resolved_database_url)
    return settings, engine, make_object_store(settings, timeout=10.0, retries=1), ring


@audit_app.callback(invoke_without_command=True)
def audit(
    ctx: typer.Context,
    skip_checkpoints: Annotated[
        bool,
        typer.Option(
            "--skip-checkpoints",
            help="Verify the database alone (no object store): deleted chains and removed "
            "last events then go unnoticed.",
        ),
    ] = False,
) -> None:
    """Re-verify every audit chain, and the record against the latest signed checkpoint;
    exit 1 naming the first broken link of each broken chain."""
    if ctx.invoked_subcommand is not None:
        return
    from mutabaqa.anchoring import STORE_ERRORS, CheckpointReading, read_latest, verify_record

    settings, engine, store, ring = _audit_context()
    reading = CheckpointReading()
    if not skip_checkpoints:
        try:
            reading = read_latest(store, settings.s3_evidence_bucket, ring)
        except STORE_ERRORS as exc:
            _fail(
                f"cannot read the audit checkpoints in bucket {settings.s3_evidence_bucket}: "
                f"{exc} (--skip-checkpoints verifies the database alone)",
                2,
            )
    checked, breaks = verify_record(engine, reading)
    engine.dispose()
    if reading.latest is not None:
        typer.echo(
            f"checkpoint {reading.latest.name} ({reading.latest.at.isoformat()}): "
            f"{len(reading.latest.anchors)} chains anchored"
        )
    elif skip_checkpoints:
        typer.echo("checkpoints skipped: truncated or deleted chains cannot be detected", err=True)
    else:
        typer.echo("no audit checkpoint yet: deleted chains cannot be detected", err=True)
    for problem in reading.problems:
        typer.echo(f"BROKEN {problem}", err=True)
    for broken in breaks:
        typer.echo(f"BROKEN {broken}", err=True)
    if breaks or reading.problems:
        typer.echo(
            f"{len(breaks)} of {checked} chains broken"
            + (f"; {len(reading.problems)} checkpoint problem(s)" if reading.problems else ""),
            err=True,
        )
        raise typer.Exit(1)
    typer.echo(f"{checked} chains verified, all intact")


@audit_app.command("checkpoint")
def audit_checkpoint() -> None:
    """Sign and store a checkpoint of every chain's head in the evidence bucket now (the
    worker also writes one every MUTABAQA_AUDIT_CHECKPOINT_INTERVAL_SECONDS). Exit 1 when a
    head looked tampered: its previous anchor is kept, and the chain named."""
    from mutabaqa.anchoring import STORE_ERRORS, write_checkpoint

    settings, engine, store, ring = _audit_context()
    try:
        written = write_checkpoint(settings, engine, store, ring)
    except STORE_ERRORS as exc:
        _fail(f"checkpoint not written to bucket {settings.s3_evidence_bucket}: {exc}", 2)
    finally:
        engine.dispose()
    for problem in written.problems:
        typer.echo(f"BROKEN {problem} (previous anchor kept)", err=True)
    if written.name is None:
        typer.echo(f"no head moved since the latest checkpoint ({written.chains} chains)")
    else:
        typer.echo(f"checkpoint {written.name}: {written.chains} chains")
    if written.problems:
        raise typer.Exit(1)
