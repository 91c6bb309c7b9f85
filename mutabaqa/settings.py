"""Configuration: one settings class, read from ``MUTABAQA_*`` environment variables.

Services left unset (``database_url``, ``temporal_address``, ``s3_endpoint``) mean "the
embedded stack provides it": ``mutabaqa dev`` starts the missing ones; ``mutabaqa api``
and ``mutabaqa worker`` fall back to the embedded stack's default addresses.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from domain.audit_links import DEVELOPMENT_AUDIT_KEY, AuditKeys
from domain.credentials import AssessmentLevel
from domain.logins import PASSWORD_MIN_LENGTH
from mutabaqa.i18n import languages

#: Every placeholder secret starts with this; outside development it refuses start-up.
PLACEHOLDER_PREFIX = "change-me"

#: Port of SMTP over implicit TLS (RFC 8314); other ports speak plain SMTP, upgraded with
#: STARTTLS when ``smtp_starttls`` is set.
SMTP_IMPLICIT_TLS_PORT = 465
#: The secrets a placeholder may stand for, in the order messages name them.
SECRETS = (
    "s3_secret_key",
    "jwt_secret",
    "admin_password",
    "audit_key",
    "temporal_seal_key",
    "temporal_payload_keys",
)
#: Secrets outside development must be at least this long (of those that are strings).
LONG_SECRETS = ("jwt_secret", "audit_key", "temporal_seal_key")

MiB = 1024 * 1024
DAY = 24 * 3600.0


class Environment(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


def parse_payload_keys(value: str) -> dict[str, bytes]:
    """``id:base64,id:base64`` -> {id: key}, in order (the first is the current key). Each key
    is 16, 24 or 32 bytes (AES-128/192/256); ids are letters, digits, ``.``, ``_``, ``-``."""
    keys: dict[str, bytes] = {}
    for entry in (part.strip() for part in value.split(",")):
        kid, sep, encoded = entry.partition(":")
        if not sep or not re.fullmatch(r"[A-Za-z0-9._-]{1,64}", kid):
            raise ValueError(
                "each key must read <key id>:<base64 key> (id: letters, digits, . _ -)"
            )
        try:
            key = base64.b64decode(encoded, validate=True)
        except binascii.Error:
            raise ValueError(f"key {kid!r} is not valid base64") from None
        if len(key) not in (16, 24, 32):
            raise ValueError(f"key {kid!r} must be 16, 24 or 32 bytes, not {len(key)}")
        if kid in keys:
            raise ValueError(f"key id {kid!r} appears twice")
        keys[kid] = key
    return keys


class ObjectLockMode(StrEnum):
    """How stored evidence and certificates are locked (S3 object lock): under COMPLIANCE
    nobody, the store's root user included, can shorten the retention or delete a version
    before it ends; under GOVERNANCE a user with the bypass permission can."""

    GOVERNANCE = "GOVERNANCE"
    COMPLIANCE = "COMPLIANCE"


class SettingsError(Exception):
    """The configuration cannot be used; the message says which variable to fix."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="MUTABAQA_", env_file=None, extra="ignore", frozen=True
    )

    #: Production unless said otherwise: placeholder secrets refused, signing keys never
    #: generated, webhooks only to public addresses. ``mutabaqa dev`` (and the test suite)
    #: run in development.
    env: Environment = Environment.PRODUCTION
    data_dir: Path = Path(".mutabaqa")

    # Database (SQLite in the data directory when unset).
    database_url: str | None = None
    #: The API's connection pool: connections kept open, extra ones under load, and how long
    #: a request waits for one before it answers 503 with ``Retry-After``.
    api_db_pool_size: Annotated[int, Field(gt=0)] = 10
    api_db_max_overflow: Annotated[int, Field(ge=0)] = 30
    db_pool_timeout_seconds: Annotated[float, Field(gt=0)] = 10.0

    # Temporal.
    temporal_address: str | None = None
    temporal_namespace: str = "default"
    temporal_task_queue: str = "mutabaqa"
    #: HMAC key of the seals every start, Update and Signal carries (``docs/temporal-security.md``):
    #: held by the API, the workers and the CLI only. At least 32 characters outside development.
    temporal_seal_key: SecretStr = SecretStr(
        f"{PLACEHOLDER_PREFIX}-temporal-seal-key-0123456789abcdef"
    )
    #: Upgrading a deployment with workflows in flight: messages a workflow handled before
    #: this instant (ISO 8601, e.g. the upgrade's time) are not checked for seals, so those
    #: histories replay. Unset (a new deployment): every message is checked.
    temporal_seals_since: datetime | None = None
    #: AES-GCM keys of the payload codec, ``<key id>:<base64 key>`` separated by commas; the
    #: first encrypts, every one decrypts (rotation: put the new key first, keep the old ones
    #: while histories encrypted with them are kept).
    temporal_payload_keys: SecretStr = SecretStr(
        f"{PLACEHOLDER_PREFIX}-dev:2yFp/yXe6SV/u2oVQdkaqgpNIsNrjaFrU5Cn9Vmpfsg="
    )
    #: ``mutabaqa codec-server``: where it listens, and the Temporal UI origins it answers.
    codec_server_host: str = "127.0.0.1"
    codec_server_port: int = 8234
    codec_server_origins: list[str] = Field(
        default_factory=lambda: ["http://127.0.0.1:8233", "http://localhost:8233"]
    )

    # Object store.
    s3_endpoint: str | None = None
    s3_public_endpoint: str | None = Field(
        default=None, description="Base URL clients use for presigned links (default: s3_endpoint)."
    )
    s3_region: str = "us-east-1"
    s3_access_key: str = "mutabaqa-dev"
    s3_secret_key: SecretStr = SecretStr(f"{PLACEHOLDER_PREFIX}-s3-secret")
    s3_evidence_bucket: str = "mutabaqa-evidence"
    #: Object lock mode of stored evidence and certificates; unset: COMPLIANCE in
    #: production, GOVERNANCE in development (test data can be cleared).
    s3_object_lock_mode: ObjectLockMode | None = None
    s3_certificates_bucket: str = "mutabaqa-certificates"

    # Public identity of the deployment (presigned links, QR codes, verification pages).
    public_base_url: str = "http://127.0.0.1:8000"
    #: Per-client-IP token bucket on the public routes (``/verify``, ``/directory``): the
    #: refill rate and the burst. Held in the API process; behind several API instances,
    #: rate-limit at the reverse proxy too.
    public_rate_per_minute: Annotated[int, Field(gt=0)] = 60
    public_rate_burst: Annotated[int, Field(gt=0)] = 20
    #: Reverse proxies whose ``X-Forwarded-For`` / ``X-Forwarded-Proto`` the API believes:
    #: comma-separated addresses or networks (``10.0.0.5``, ``10.0.0.0/24``), ``*`` for
    #: any. Empty (the default): none — the client address is the connection's, and a
    #: forwarded header is ignored.
    forwarded_allow_ips: str = ""

    # Authentication.
    jwt_secret: SecretStr = SecretStr(f"{PLACEHOLDER_PREFIX}-jwt-secret-0123456789abcdef")
    jwt_issuer: str = "mutabaqa"
    jwt_audience: str = "mutabaqa-api"
    access_token_minutes: Annotated[int, Field(gt=0)] = 60
    admin_email: str = "admin@mutabaqa.local"
    admin_password: SecretStr = SecretStr(f"{PLACEHOLDER_PREFIX}-admin")

    # Logins: throttling (counters in the database, shared by every API process) and the
    # bound on concurrent password hashes (per process). See domain/logins.py.
    #: Failed logins of one account that cost nothing; each further one doubles the wait
    #: before the next attempt (1 s, 2 s, 4 s, ...) up to ``login_max_delay_seconds``.
    login_free_failures: Annotated[int, Field(ge=1)] = 5
    login_max_delay_seconds: Annotated[float, Field(gt=0)] = 300.0
    #: An account's failures are forgotten after this long without one.
    login_quiet_seconds: Annotated[float, Field(gt=0)] = 900.0
    #: Failed logins a minute from one client address before every attempt is refused.
    login_address_failures_per_minute: Annotated[int, Field(ge=1)] = 20
    password_hash_concurrency: Annotated[int, Field(ge=1)] = 2
    #: How long a login waits for a free hashing slot before it answers 503.
    password_hash_wait_seconds: Annotated[float, Field(gt=0)] = 2.0
    # The audit trail (docs/audit.md). The key links events (HMAC-SHA256); it must not live
    # in the database. Retired keys keep verifying the events they linked. Env for the
    # retired keys: a JSON list of strings.
    audit_key: SecretStr = SecretStr(DEVELOPMENT_AUDIT_KEY)
    audit_retired_keys: list[SecretStr] = Field(default_factory=list)
    #: Seconds between the worker's signed checkpoints of every chain's head (written to
    #: the evidence bucket, object-locked); 0: the worker writes none (run ``mutabaqa audit
    #: checkpoint`` from cron instead). Chains deleted within one interval of their creation
    #: escape the checkpoint.
    audit_checkpoint_interval_seconds: Annotated[float, Field(ge=0)] = 900.0
    #: How often each worker sweeps the buckets for orphans (objects no row names,
    #: unfinished multipart uploads; ``mutabaqa/sweeper.py``); 0: never (use ``mutabaqa
    #: storage sweep`` from cron).
    orphan_sweep_interval_seconds: Annotated[float, Field(ge=0)] = 3600.0
    #: How old an orphan must be before it is removed: an upload not recorded by then is
    #: abandoned (recording takes seconds to minutes).
    orphan_grace_seconds: Annotated[float, Field(ge=0)] = 86400.0

    # Certificate signing: a private-key file (generated on first start in development),
    # read by workers only; the API publishes its public half, a file of its own.
    signing_key_path: Path | None = None
    #: The active key's public half (PEM), all the API reads of it. Default: beside the
    #: private key (``signing-ed25519.pem`` → ``signing-ed25519.pub.pem``).
    signing_public_key_path: Path | None = None
    #: Earlier signing keys (PEM files, public or private), still published in the key set
    #: so that certificates they signed stay verifiable. Env: a JSON list of paths.
    signing_retired_key_paths: list[Path] = Field(default_factory=list)
    #: Folder of the PDF signing identity (PAdES, ECDSA P-256): ``signing-cert.pem``,
    #: ``signing-key.pem`` and ``ca-cert.pem`` (the chain readers trust). Default
    #: ``<data_dir>/pki``; ``mutabaqa ca init`` creates a development CA there.
    pdf_signing_dir: Path | None = None

    #: Ports a webhook URL may use besides 80 and 443 (outside development). Env: a JSON
    #: list, e.g. ``[8443]``.
    webhook_allowed_ports: list[Annotated[int, Field(gt=0, lt=65536)]] = Field(default_factory=list)

    # Certification body identity (printed on every certificate).
    body_name: str = "Organisme de certification de démonstration"
    body_name_ar: str = "هيئة الإشهاد التجريبية"
    body_address: str = "Casablanca, Maroc"
    body_country: str = "MA"
    body_accreditation: str = "ISO/IEC 17065 — accréditation de démonstration"
    certificate_prefix: str = "MA"
    timezone: str = "Africa/Casablanca"

    # Verifiable credentials (docs/credentials.md). The accreditation under which the body
    # certifies, as each credential states it (UNTP ``authorisation``): its name is
    # ``body_accreditation``; the issuing authority is named here. The defaults are
    # demonstration values (``.invalid`` is a reserved domain): set them in production.
    accreditation_authority_id: str = Field(
        default="https://accreditation.invalid/", pattern=r"^(https?|did):"
    )
    accreditation_authority_name: str = "Accreditation authority (demonstration)"
    accreditation_authority_registered_id: str | None = None
    #: A public page proving the accreditation (UNTP ``endorsementEvidence``), if any.
    accreditation_evidence_url: str | None = Field(default=None, pattern=r"^https?://")
    #: UNTP ``assessmentLevel``: product-safety certification the law requires is
    #: ``authority-mandate``.
    accreditation_assessment_level: AssessmentLevel = "authority-mandate"
    #: UNTP ``conformityTopic`` of every assessment (a URI and its name).
    conformity_topic_id: str = Field(
        default="https://vocabulary.uncefact.org/untp/ConformityTopic#safety",
        pattern=r"^https?://",
    )
    conformity_topic_name: str = "Product safety"
    #: Entries per status list (Bitstring Status List v1.0 asks for at least 131,072 for
    #: herd privacy); a new list opens when the current one is half allocated.
    status_list_size: Annotated[int, Field(ge=131072, multiple_of=8)] = 131072
    #: How long verifiers may cache a status list (its ``ttl``).
    status_list_ttl_seconds: Annotated[int, Field(gt=0)] = 300

    # Uploads and retention.
    max_upload_bytes: Annotated[int, Field(gt=0)] = 200 * MiB
    upload_part_size: Annotated[int, Field(ge=5 * MiB)] = 16 * MiB
    #: Send each part with its SHA-256 as an S3 checksum, so that the worker checks the
    #: stored checksum instead of reading the file back (docs/uploads.md). Off: no checksum
    #: is sent and every upload is read back (for a store that refuses S3 checksums).
    upload_checksums: bool = True
    #: Uploads streamed at once by one API process (each holds a few part buffers and a
    #: thread); one more is refused with 503 and ``Retry-After``.
    max_concurrent_uploads: Annotated[int, Field(gt=0)] = 8
    #: Limit of every request body but an upload's (JSON, forms), enforced while it is read,
    #: before authentication.
    max_json_bytes: Annotated[int, Field(gt=0)] = 1 * MiB
    retention_days: Annotated[int, Field(gt=0)] = 3653

    # E-mail notifications (SMTP). Unset host: notifications are recorded but not sent.
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    #: CA certificates (PEM) that sign the SMTP server's certificate; unset: the system's.
    smtp_ca_file: Path | None = None
    smtp_from: str = "Mutabaqa <no-reply@mutabaqa.local>"
    smtp_timeout_seconds: float = 10.0
    #: Languages of every e-mail, in the order of the body (each needs a catalogue in
    #: ``mutabaqa/locale``). Env: a JSON list, e.g. ``["fr", "ar", "en"]``.
    mail_languages: Annotated[list[str], Field(min_length=1)] = Field(
        default_factory=lambda: ["fr", "ar"]
    )

    # The outbox: each side effect (mail, webhook, PDF, ...) is tried this many times, with
    # back-off from the initial to the maximum interval, then marked dead (the dead letter,
    # ``mutabaqa outbox``). The defaults give up after about ten minutes of back-off.
    outbox_max_attempts: Annotated[int, Field(ge=1)] = 8
    outbox_initial_interval_seconds: Annotated[float, Field(gt=0)] = 5.0
    outbox_maximum_interval_seconds: Annotated[float, Field(gt=0)] = 600.0

    # Deadlines and stage targets, in seconds (tests shorten them).
    info_response_seconds: Annotated[float, Field(gt=0)] = 30 * DAY
    info_reminder_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.75
    sample_receipt_target_seconds: Annotated[float, Field(gt=0)] = 14 * DAY
    testing_target_seconds: Annotated[float, Field(gt=0)] = 21 * DAY
    decision_target_seconds: Annotated[float, Field(gt=0)] = 7 * DAY
    appeal_window_seconds: Annotated[float, Field(gt=0)] = 30 * DAY
    # Certificates after issuance.
    suspension_max_seconds: Annotated[float, Field(gt=0)] = 180 * DAY
    surveillance_deadline_seconds: Annotated[float, Field(gt=0)] = 90 * DAY
    #: Seconds between surveillances; unset: the scheme's surveillance months.
    surveillance_interval_seconds: Annotated[float, Field(gt=0)] | None = None
    #: Test seam: a certificate expires this many seconds after issue instead of at the end
    #: of its ``valid_until`` day. Unset in use.
    certificate_validity_seconds: Annotated[float, Field(gt=0)] | None = None
    #: History length past which a certificate's workflow continues as new.
    certificate_history_threshold: Annotated[int, Field(ge=20)] = 2000

    #: How long the API waits for the workflow to answer before 503 + Retry-After.
    workflow_answer_seconds: Annotated[float, Field(gt=0)] = 15.0

    #: Test seam (fault injection): seconds ``issue_certificate`` and a certificate's status
    #: change wait after committing and before completing, so a test can kill the worker in
    #: between. 0 in use.
    fault_pause_after_certificate_seconds: Annotated[float, Field(ge=0)] = 0.0

    # Observability (docs/operations.md).
    #: ``text`` (human-readable) or ``json`` (one JSON object a line, with the request id).
    log_format: Literal["text", "json"] = "text"
    #: Seconds the API keeps the figures it computes from the database for ``/metrics``
    #: (one set of aggregate queries per interval, however often it is scraped); 0: every
    #: scrape queries.
    metrics_db_cache_seconds: Annotated[float, Field(ge=0)] = 10.0
    #: ``host:port`` where the worker serves the Temporal SDK's Prometheus metrics; unset:
    #: not served.
    worker_metrics_address: str | None = None
    #: OpenTelemetry tracing (FastAPI and Temporal spans), exported over OTLP to the
    #: collector named by the standard ``OTEL_EXPORTER_OTLP_ENDPOINT`` variables.
    otel_enabled: bool = False
    #: ``service.name`` of the spans; the process kind is appended (``-api``, ``-worker``).
    otel_service_name: str = "mutabaqa"

    # Processes.
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    health_timeout_seconds: float = 2.0

    @field_validator("mail_languages")
    @classmethod
    def _mail_languages_have_catalogues(cls, value: list[str]) -> list[str]:
        missing = [language for language in value if language not in languages()]
        if missing:
            raise ValueError(
                f"MUTABAQA_MAIL_LANGUAGES: no message catalogue for {', '.join(missing)} "
                f"(available: {', '.join(languages())})"
            )
        return value

    @field_validator("admin_password")
    @classmethod
    def _admin_password_is_long_enough(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value()) < PASSWORD_MIN_LENGTH:
            raise ValueError(
                f"MUTABAQA_ADMIN_PASSWORD must be at least {PASSWORD_MIN_LENGTH} characters"
            )
        return value

    @model_validator(mode="after")
    def _no_login_in_clear(self) -> Settings:
        if self.smtp_username and not self.smtp_tls:
            raise ValueError(
                "MUTABAQA_SMTP_USERNAME is set but the SMTP connection is not encrypted: set "
                "MUTABAQA_SMTP_STARTTLS=true, or MUTABAQA_SMTP_PORT=465 (implicit TLS); "
                "credentials are never sent in clear"
            )
        return self

    @field_validator("temporal_payload_keys")
    @classmethod
    def _payload_keys_parse(cls, value: SecretStr) -> SecretStr:
        parse_payload_keys(value.get_secret_value())
        return value

    def refuse_placeholders(self, secrets: Iterable[str] = SECRETS) -> None:
        """Outside development, refuse ``secrets`` (names of settings) that still hold the
        development placeholder, and any of ``LONG_SECRETS`` shorter than 32 characters.
        Each process asks only for what it uses: the API all of them; the worker the S3
        secret, the audit key and the Temporal keys; migrations the audit key."""
        if self.env is Environment.DEVELOPMENT:
            return
        wanted = [name for name in SECRETS if name in set(secrets)]
        placeholders = [
            f"MUTABAQA_{name.upper()}"
            for name in wanted
            if name != "temporal_payload_keys"
            if getattr(self, name).get_secret_value().startswith(PLACEHOLDER_PREFIX)
        ]
        if "temporal_payload_keys" in wanted and any(
            kid.startswith(PLACEHOLDER_PREFIX)
            for kid in parse_payload_keys(self.temporal_payload_keys.get_secret_value())
        ):
            placeholders.append("MUTABAQA_TEMPORAL_PAYLOAD_KEYS")
        if placeholders:
            raise SettingsError(
                f"invalid configuration: {', '.join(placeholders)} still hold(s) the "
                f"development placeholder; set real secrets before starting in "
                f"{self.env.value} mode"
            )
        for name in LONG_SECRETS:
            if name in wanted and len(getattr(self, name).get_secret_value()) < 32:
                raise SettingsError(
                    f"invalid configuration: MUTABAQA_{name.upper()} must be at least 32 "
                    "characters outside development"
                )

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'mutabaqa.db').resolve()}"

    @property
    def resolved_temporal_address(self) -> str:
        return self.temporal_address or "127.0.0.1:7233"

    @property
    def resolved_s3_endpoint(self) -> str:
        return self.s3_endpoint or "http://127.0.0.1:9000"

    @property
    def resolved_object_lock_mode(self) -> str:
        if self.s3_object_lock_mode is not None:
            return self.s3_object_lock_mode.value
        mode = ObjectLockMode.GOVERNANCE if self.is_development else ObjectLockMode.COMPLIANCE
        return mode.value

    @property
    def resolved_signing_key_path(self) -> Path:
        return self.signing_key_path or self.data_dir / "keys" / "signing-ed25519.pem"

    @property
    def resolved_signing_public_key_path(self) -> Path:
        if self.signing_public_key_path is not None:
            return self.signing_public_key_path
        private = self.resolved_signing_key_path
        return private.with_name(f"{private.name.removesuffix('.pem')}.pub.pem")

    @property
    def resolved_pdf_signing_dir(self) -> Path:
        return self.pdf_signing_dir or self.data_dir / "pki"

    def audit_keys(self) -> AuditKeys:
        return AuditKeys.from_secrets(
            self.audit_key.get_secret_value(),
            [key.get_secret_value() for key in self.audit_retired_keys],
        )

    @property
    def smtp_tls(self) -> bool:
        """Whether the SMTP session is encrypted: STARTTLS, or implicit TLS on port 465."""
        return self.smtp_starttls or self.smtp_port == SMTP_IMPLICIT_TLS_PORT

    @property
    def forwarded_allow_ips_list(self) -> list[str]:
        """The trusted proxies of ``forwarded_allow_ips`` (empty: none)."""
        return [item.strip() for item in self.forwarded_allow_ips.split(",") if item.strip()]

    @property
    def public_https(self) -> bool:
        """Whether the public URL is https (the API then sends Strict-Transport-Security)."""
        return self.public_base_url.lower().startswith("https://")

    @property
    def is_development(self) -> bool:
        return self.env is Environment.DEVELOPMENT


def load_settings(**overrides: object) -> Settings:
    """Read settings from the environment, turning validation errors into one clear message;
    outside development, refuse every placeholder secret."""
    return load_settings_for(SECRETS, overrides)


def load_settings_for(secrets: Iterable[str], overrides: Mapping[str, object]) -> Settings:
    """``load_settings`` for a process that uses only ``secrets`` (names of settings)."""
    from pydantic import ValidationError

    try:
        settings = Settings(**overrides)  # type: ignore[arg-type]
        settings.refuse_placeholders(secrets)
        return settings
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"])
            where = f"MUTABAQA_{loc.upper()}: " if loc else ""
            lines.append(f"{where}{err['msg'].removeprefix('Value error, ')}")
        raise SettingsError("invalid configuration: " + "; ".join(lines)) from exc
