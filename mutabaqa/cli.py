"""The ``mutabaqa`` command: the embedded dev stack and the production processes."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated

import typer

from mutabaqa.audit_cli import audit_app
from mutabaqa.cli_support import TEMPORAL_SECRETS, WORKER_SECRETS
from mutabaqa.cli_support import dev_settings as _dev_settings
from mutabaqa.cli_support import fail as _fail
from mutabaqa.cli_support import settings as _settings
from mutabaqa.screenshots import screenshots_command
from mutabaqa.settings import SECRETS, Settings, SettingsError, load_settings_for

if TYPE_CHECKING:
    from cryptography import x509

app = typer.Typer(
    help="Mutabaqa — conformity certification on durable workflows.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


app.add_typer(audit_app, name="audit")
app.command("screenshots")(screenshots_command)


def _require_signing_keys(settings: Settings) -> None:
    """Refuse to start without the signing material (created on first start in development)."""
    from mutabaqa.trust import ensure_signing_material

    try:
        ensure_signing_material(settings)
    except SettingsError as exc:
        _fail(str(exc), 2)


def _require_public_keys(settings: Settings) -> None:
    """The API publishes the public keys and reads nothing else of the signing material."""
    from mutabaqa.signing import PublicKeySet

    try:
        PublicKeySet.load(settings)
    except SettingsError as exc:
        _fail(str(exc), 2)


def _sigterm_as_exit() -> None:
    """Make SIGTERM unwind like Ctrl-C so ``finally`` blocks stop child processes; and
    Ctrl-C (SIGINT) too even if this process inherited it ignored (started in the
    background by a shell script)."""

    def handler(signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, signal.default_int_handler)


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
    MUTABAQA_DATABASE_URL) are used instead of starting one. The worker and the API run as
    child processes of their own; every child logs to DATA_DIR/logs. If one of them stops by
    itself, the whole stack stops and says which (exit status 1); start it again. Ctrl-C or
    SIGTERM stops everything within 10 s. A port still held by a process of a previous run
    (stopping after a crash) is waited for, up to 20 s.
    """
    from mutabaqa.dev import DevOptions, run_dev
    from mutabaqa.devstack import S3Ports, StackError, TemporalPorts

    settings = _dev_settings(data_dir=data_dir, api_host=host, api_port=port)
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
    log_level: Annotated[
        str, typer.Option(help="Server log level (info logs every request; warning does not).")
    ] = "info",
) -> None:
    """Serve the HTTP API (stateless; run several behind a load balancer)."""
    from mutabaqa.serve import serve_api

    settings = _settings(SECRETS, api_host=host, api_port=port)
    _require_public_keys(settings)
    asyncio.run(
        serve_api(settings, host=settings.api_host, port=settings.api_port, log_level=log_level)
    )


@app.command("codec-server")
def codec_server(
    host: Annotated[
        str | None, typer.Option(help="Bind address (MUTABAQA_CODEC_SERVER_HOST).")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port (MUTABAQA_CODEC_SERVER_PORT).")] = None,
) -> None:
    """Serve POST /encode and /decode for the Temporal UI (its "codec endpoint") and the
    temporal CLI (--codec-endpoint): they show payloads decrypted. Reading them needs no
    other key: keep it on the loopback interface or behind your own authentication."""
    import uvicorn

    from mutabaqa.codec_server import create_codec_app

    settings = _settings(("temporal_payload_keys",), codec_server_host=host, codec_server_port=port)
    uvicorn.run(
        create_codec_app(settings),
        host=settings.codec_server_host,
        port=settings.codec_server_port,
        log_level="warning",
    )


@app.command()
def worker() -> None:
    """Run a Temporal worker for every workflow and activity (stateless; scale out).

    SIGINT/SIGTERM: activities in flight get a few seconds to finish; the worker is gone
    within 4 s (activities abandoned then are retried by Temporal after their timeout).
    """
    from mutabaqa.clients import make_object_store
    from mutabaqa.serve import serve_worker
    from mutabaqa.worker import ACTIVITY_THREADS, worker_engine

    settings = _settings(WORKER_SECRETS)
    _require_signing_keys(settings)
    engine = worker_engine(settings)
    typer.echo(
        f"worker on {settings.resolved_temporal_address} task queue "
        f"{settings.temporal_task_queue}: {ACTIVITY_THREADS} activity threads",
        err=True,
    )
    try:
        asyncio.run(serve_worker(settings, engine, make_object_store(settings)))
    finally:
        engine.dispose()
    # Stopped cleanly. The Temporal runtime's threads (the worker's client is also the
    # outbox's) can abort the interpreter's finalisation (SIGABRT): leave now, with 0.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


@app.command()
def migrate(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Apply the database migrations (Alembic) up to REVISION."""
    from mutabaqa.migrate import upgrade

    settings = _settings(("audit_key",))
    upgrade(settings.resolved_database_url, revision, settings)
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


keys_app = typer.Typer(help="Certificate signing keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


@keys_app.command("init")
def keys_init() -> None:
    """Create the signing key at MUTABAQA_SIGNING_KEY_PATH (for the workers only) unless it
    exists, and its public half at MUTABAQA_SIGNING_PUBLIC_KEY_PATH (the API's); print its kid."""
    from mutabaqa.signing import KeyRing, create_key_file, write_public_key_file

    settings = _settings()
    path = settings.resolved_signing_key_path
    public_path = settings.resolved_signing_public_key_path
    try:
        created = create_key_file(path) is not None
        ring = KeyRing.load(settings)
        public_created = write_public_key_file(public_path, ring.public_key())
    except (OSError, SettingsError) as exc:
        _fail(str(exc))
    typer.echo(f"{'created' if created else 'existing'} signing key {path} (workers only)")
    typer.echo(f"{'created' if public_created else 'existing'} public key {public_path} (the API)")
    typer.echo(f"kid {ring.active_kid}")


@keys_app.command("export")
def keys_export() -> None:
    """Print the public key set (as served at /.well-known/mutabaqa-keys.json, from the same
    public-key files), for offline verifiers: `mutabaqa verify --keys FILE`."""
    import json

    from mutabaqa.signing import PublicKeySet

    settings = _settings()
    try:
        keys = PublicKeySet.load(settings)
    except SettingsError as exc:
        _fail(str(exc))
    typer.echo(json.dumps(keys.jwks(), indent=2))


ca_app = typer.Typer(
    help="The CA and certificate of the PDF (PAdES) signature.", no_args_is_help=True
)
app.add_typer(ca_app, name="ca")


@ca_app.command("init")
def ca_init(
    directory: Annotated[
        Path | None,
        typer.Option(
            "--dir", help="Where to write the PEM files (default: MUTABAQA_PDF_SIGNING_DIR)."
        ),
    ] = None,
) -> None:
    """Create a development CA and a document-signing certificate it issued (ECDSA P-256).

    For development and tests: a deployment provides its own CA-issued signing certificate.
    Refuses to overwrite existing files. PDF readers show certificates as signed by a trusted
    signer once they trust ca-cert.pem.
    """
    from activities.pki import create_dev_ca

    settings = _settings()
    folder = directory or settings.resolved_pdf_signing_dir
    try:
        paths = create_dev_ca(
            folder, organization=settings.body_name, country=settings.body_country
        )
    except OSError as exc:
        _fail(str(exc))
    typer.echo(f"created development CA {paths.ca_cert} (key {paths.ca_key})")
    typer.echo(f"created signing certificate {paths.signing_cert} (key {paths.signing_key})")
    typer.echo(f"trust {paths.ca_cert} in PDF readers to see certificates as validly signed")


@app.command()
def verify(
    file: Annotated[
        Path | None,
        typer.Argument(help="Certificate PDF or JSON (from /verify/NUMBER), or credential."),
    ] = None,
    keys: Annotated[
        str | None,
        typer.Option(
            help="Key set: a JWKS file or the URL of /.well-known/mutabaqa-keys.json "
            "(default: MUTABAQA_PUBLIC_BASE_URL's). For a credential, also a DID document; "
            "default: the issuer's did:web; a file means offline (status not read)."
        ),
    ] = None,
    ca: Annotated[
        list[Path] | None,
        typer.Option(help="CA certificate (PEM) trusted for a PDF's PAdES signature."),
    ] = None,
) -> None:
    """Check that a certificate is genuine: signed by a key of the key set, unaltered.

    Exit status: 0 genuine, 1 altered or forged, 2 key not in the key set, 3 unreadable.

    Whether a certificate is still in force only the online register says; a verifiable
    credential's status lists are read online (unless --keys is a file) and reported.
    """
    from mutabaqa import verify as checks
    from mutabaqa.verify import Unreadable, Verdict, describe_payload, read_certificate_file
    from mutabaqa.verify_credential import is_credential, report, verify_credential

    if file is None:
        _fail("UNREADABLE: give the certificate file (PDF or JSON) to verify", Verdict.UNREADABLE)
    try:
        document, pdf_bytes = read_certificate_file(file)
    except Unreadable as exc:
        _fail(f"UNREADABLE: {exc}", Verdict.UNREADABLE)
    if pdf_bytes is None and is_credential(document):
        checked = verify_credential(document, keys)
        if checked.verdict is Verdict.UNREADABLE:
            _fail(f"UNREADABLE: {checked.reason}", Verdict.UNREADABLE)
        typer.echo("\n".join(report(checked)))
        raise typer.Exit(checked.verdict)

    base_url = checks.base_url_of(keys) if keys else None
    if base_url is None:
        try:
            base_url = load_settings_for((), {}).public_base_url  # uses no secret
        except SettingsError as exc:
            _fail(str(exc), Verdict.UNREADABLE)
    source = keys or checks.keys_url(base_url)
    trust_roots = _trust_roots(ca or [])
    for noisy in ("pyhanko", "pyhanko_certvalidator"):  # verdicts are reported below
        logging.getLogger(noisy).setLevel(logging.CRITICAL)
    outcome = checks.verify_document(document, pdf_bytes, source, trust_roots)
    if outcome.verdict is Verdict.UNREADABLE:
        _fail(f"UNREADABLE: {outcome.reason}", Verdict.UNREADABLE)
    labels = {
        Verdict.GENUINE: "GENUINE",
        Verdict.NOT_GENUINE: "NOT GENUINE",
        Verdict.UNKNOWN_KEY: "UNKNOWN KEY",
    }
    typer.echo(f"{labels[outcome.verdict]}: {outcome.reason}.")
    payload = outcome.payload
    claims = "" if outcome.verdict is Verdict.GENUINE else " (as it claims)"
    for line in describe_payload(payload):
        typer.echo(f"  {line}{claims}")
    typer.echo(f"  signing key: {outcome.kid} (key set: {source})")
    for note in outcome.notes:
        typer.echo(f"  {note}")
    number = str(payload.get("number", ""))
    typer.echo(
        "The signature shows who issued the certificate and that it is unaltered, not that it "
        "is still in force: its current status (active, suspended, withdrawn, expired...) "
        f"must be checked online at {checks.status_url(base_url, number)}"
    )
    raise typer.Exit(outcome.verdict)


def _trust_roots(paths: list[Path]) -> list[x509.Certificate]:
    from cryptography import x509

    roots: list[x509.Certificate] = []
    for path in paths:
        try:
            roots.extend(x509.load_pem_x509_certificates(path.read_bytes()))
        except (OSError, ValueError) as exc:
            _fail(f"UNREADABLE: CA certificate {path}: {exc}", 3)
    return roots


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


outbox_app = typer.Typer(
    help="The outbox: side effects (mail, webhooks, PDFs...) and their dead letter.",
    no_args_is_help=True,
)
app.add_typer(outbox_app, name="outbox")


@outbox_app.command("list")
def outbox_list(
    status: Annotated[
        str | None, typer.Option(help="Only rows in this status: pending, delivered or dead.")
    ] = None,
) -> None:
    """List the outbox's rows (oldest first): id, kind, status, attempts, last error."""
    from models.outbox import OutboxStatus
    from mutabaqa.db import create_db_engine
    from records.outbox import listing

    try:
        wanted = OutboxStatus(status) if status else None
    except ValueError:
        _fail(f"unknown status {status!r} (pending, delivered, dead)", 2)
    settings = _settings()
    engine = create_db_engine(settings.resolved_database_url)
    try:
        for row in listing(engine, wanted):
            error = f"  {row.last_error}" if row.last_error else ""
            typer.echo(
                f"{row.id}  {row.kind.value:<26} {row.status.value:<9} "
                f"{row.attempts:>2}  {row.dedupe_key}{error}"
            )
    finally:
        engine.dispose()


@outbox_app.command("replay")
def outbox_replay(
    ids: Annotated[list[str] | None, typer.Argument(help="Dead rows to replay.")] = None,
    all_dead: Annotated[bool, typer.Option("--all-dead", help="Replay every dead row.")] = False,
) -> None:
    """Put dead rows back to pending and start a fresh delivery for each (delivered once)."""
    if not ids and not all_dead:
        _fail("give the ids of dead rows, or --all-dead", 2)
    settings = _settings(TEMPORAL_SECRETS)
    replayed = asyncio.run(_replay(settings, None if all_dead else list(ids or [])))
    typer.echo(f"replaying {len(replayed)} row(s)")
    for row_id in replayed:
        typer.echo(f"  {row_id}")
    # The Temporal client's runtime threads can crash the interpreter's finalisation
    # (CPython 3.11: PyGILState_Release while finalizing): the work is done, leave now.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


async def _replay(settings: Settings, ids: list[str] | None) -> list[str]:
    from mutabaqa.clients import connect_temporal
    from mutabaqa.db import create_db_engine
    from mutabaqa.outbox_replay import start_replays
    from records.outbox import reset_dead

    engine = create_db_engine(settings.resolved_database_url)
    try:
        reset = reset_dead(engine, ids)
    finally:
        engine.dispose()
    return await start_replays(await connect_temporal(settings), settings, reset)


storage_app = typer.Typer(help="The object store's buckets.", no_args_is_help=True)
app.add_typer(storage_app, name="storage")


@storage_app.command("sweep")
def storage_sweep(
    older_than: Annotated[
        float | None,
        typer.Option(help="Seconds an orphan must be old (default MUTABAQA_ORPHAN_GRACE_SECONDS)."),
    ] = None,
) -> None:
    """Remove objects no row names and abort unfinished multipart uploads, once old enough."""
    from datetime import timedelta

    from mutabaqa.clients import make_object_store
    from mutabaqa.db import create_db_engine
    from mutabaqa.sweeper import sweep

    settings = _settings()
    grace = settings.orphan_grace_seconds if older_than is None else older_than
    engine = create_db_engine(settings.resolved_database_url)
    try:
        done = sweep(settings, engine, make_object_store(settings), timedelta(seconds=grace))
    finally:
        engine.dispose()
    for line in done.removed:
        typer.echo(f"removed  {line}")
    for line in done.aborted:
        typer.echo(f"aborted  {line}")
    typer.echo(f"{len(done.removed)} object(s) removed, {len(done.aborted)} upload(s) aborted")
