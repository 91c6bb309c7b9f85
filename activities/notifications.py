"""E-mail notifications over SMTP: who is told, and sending them.

What a message says is ``mutabaqa.mail`` (templates over the message catalogues).

``notify`` sends one mail of the outbox: its ``OutboxDelivery`` workflow runs it with the
outbox's bounded retry (``workflows.retries.delivery_retry``; when the attempts run out the
row is dead and ``mutabaqa outbox replay`` sends it again), so a slow or absent mail server
never blocks a lifecycle. Every attempt for one notification carries the same
``Message-ID`` (derived from ``dedupe_key``), so a receiver can drop the copy left by an
attempt that delivered but failed before reporting success.

Credentials are only ever sent over an encrypted session (STARTTLS, or implicit TLS on port
465) whose certificate is checked for ``MUTABAQA_SMTP_HOST`` (against the system's CAs or
``MUTABAQA_SMTP_CA_FILE``): settings with a user name and no TLS are refused at start, and
again here before connecting. A server that does not offer STARTTLS, or whose certificate
does not check out, is an unavailable server (retried), never a reason to log in in clear.

Errors: a server that cannot be reached, a temporary (4xx) answer or a failed login raise a
retryable ``ApplicationError`` (an operator's fix lets the next attempt through); a
permanent (5xx) refusal of the sender, of every recipient or of the message itself raises a
non-retryable one, since resending the same message cannot succeed.
"""

from __future__ import annotations

import hashlib
import smtplib
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select
from temporalio import activity
from temporalio.exceptions import ApplicationError

from domain.permissions import Role
from models.accounts import User
from models.notifications import NotificationKind, NotifyInput, NotifyResult
from models.reference import TechnicalCentre
from models.requests import CertificationRequest
from mutabaqa.mail import compose
from mutabaqa.settings import SMTP_IMPLICIT_TLS_PORT, Settings

#: One attempt (connect, log in, send) may take this long; smtp_timeout_seconds bounds each step.
NOTIFY_START_TO_CLOSE = timedelta(seconds=60)

# Error types (``ApplicationError.type``).
SMTP_UNAVAILABLE = "SmtpUnavailable"  # retryable: connection, 4xx answer, login, TLS
SMTP_REJECTED = "SmtpRejected"  # non-retryable: 5xx refusal of sender, recipients or message
SMTP_MISCONFIGURED = "SmtpMisconfigured"  # non-retryable: a login without TLS configured
NOTIFY_REQUEST_UNKNOWN = "NotifyRequestUnknown"  # non-retryable: no such request row

IMPLICIT_TLS_PORT = SMTP_IMPLICIT_TLS_PORT

MESSAGE_ID_DOMAIN = "mutabaqa"


def message_id_for(dedupe_key: str) -> str:
    """The deterministic ``Message-ID`` of a notification: the same on every retry."""
    return f"<{hashlib.sha256(dedupe_key.encode('utf-8')).hexdigest()[:32]}@{MESSAGE_ID_DOMAIN}>"


def thread_id_for(request_id: str) -> str:
    """A ``References`` id shared by every notification of one request (mail clients thread)."""
    digest = hashlib.sha256(f"request:{request_id}".encode()).hexdigest()[:32]
    return f"<{digest}@{MESSAGE_ID_DOMAIN}>"


# --- the message -----------------------------------------------------------------------------


def build_message(
    params: NotifyInput, settings: Settings, recipients: list[str], *, now: datetime
) -> EmailMessage:
    subject, body = compose(params, settings)
    msg = EmailMessage()
    msg["Subject"] = subject
    msg["From"] = settings.smtp_from
    msg["To"] = ", ".join(recipients)
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = message_id_for(params.dedupe_key)
    msg["References"] = thread_id_for(params.request_id)
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies
    msg["X-Mutabaqa-Request"] = params.request_number
    msg["X-Mutabaqa-Notification"] = params.kind.value
    msg.set_content(body)  # replaces any Content-* header set before it
    msg["Content-Language"] = ", ".join(settings.mail_languages)
    return msg


# --- sending -------------------------------------------------------------------------------


def _tls_context(settings: Settings) -> ssl.SSLContext:
    """Certificate and host name checked, against ``smtp_ca_file`` or the system's CAs."""
    ca_file = str(settings.smtp_ca_file) if settings.smtp_ca_file else None
    return ssl.create_default_context(cafile=ca_file)


def _open_smtp(settings: Settings) -> smtplib.SMTP:
    host = settings.smtp_host or ""
    timeout = settings.smtp_timeout_seconds
    if settings.smtp_port == IMPLICIT_TLS_PORT:
        return smtplib.SMTP_SSL(
            host, settings.smtp_port, timeout=timeout, context=_tls_context(settings)
        )
    smtp = smtplib.SMTP(host, settings.smtp_port, timeout=timeout)
    try:
        if settings.smtp_starttls:
            smtp.starttls(context=_tls_context(settings))
    except BaseException:
        smtp.close()
        raise
    return smtp


def _quit_quietly(smtp: smtplib.SMTP) -> None:
    """End the session; once the message is sent, a failing QUIT must not fail the attempt
    (a retry would deliver it twice)."""
    try:
        smtp.quit()
    except (smtplib.SMTPException, OSError):
        smtp.close()


def _as_text(reply: object) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)


def _refusal(what: str, code: int, reply: object) -> ApplicationError:
    return ApplicationError(
        f"SMTP server refused {what}: {code} {_as_text(reply)}",
        type=SMTP_REJECTED if code >= 500 else SMTP_UNAVAILABLE,
        non_retryable=code >= 500,
    )


def send_message(settings: Settings, msg: EmailMessage, recipients: list[str]) -> list[str]:
    """Send ``msg`` to ``recipients`` in one SMTP transaction; return the refused addresses.

    Raises a retryable ``ApplicationError`` when the server is unreachable or answers with
    a temporary error, a non-retryable one when it refuses the message for good.
    """
    where = f"{settings.smtp_host}:{settings.smtp_port}"
    if settings.smtp_username and not settings.smtp_tls:
        raise ApplicationError(
            f"refusing to log in to SMTP server {where} without TLS: set "
            "MUTABAQA_SMTP_STARTTLS=true or MUTABAQA_SMTP_PORT=465",
            type=SMTP_MISCONFIGURED,
            non_retryable=True,
        )
    envelope_from = parseaddr(settings.smtp_from)[1] or settings.smtp_from
    try:
        smtp = _open_smtp(settings)
        try:
            if settings.smtp_username:
                secret = settings.smtp_password
                smtp.login(settings.smtp_username, secret.get_secret_value() if secret else "")
            refused = smtp.send_message(msg, from_addr=envelope_from, to_addrs=recipients)
        finally:
            _quit_quietly(smtp)
    except smtplib.SMTPRecipientsRefused as exc:
        codes = [code for code, _ in exc.recipients.values()]
        permanent = all(code >= 500 for code in codes)
        listing = "; ".join(
            f"{addr}: {code} {_as_text(reply)}" for addr, (code, reply) in exc.recipients.items()
        )
        raise ApplicationError(
            f"SMTP server {where} refused every recipient: {listing}",
            type=SMTP_REJECTED if permanent else SMTP_UNAVAILABLE,
            non_retryable=permanent,
        ) from exc
    except smtplib.SMTPSenderRefused as exc:
        raise _refusal(f"the sender {exc.sender}", exc.smtp_code, exc.smtp_error) from exc
    except smtplib.SMTPDataError as exc:
        raise _refusal("the message", exc.smtp_code, exc.smtp_error) from exc
    except smtplib.SMTPAuthenticationError as exc:
        raise ApplicationError(
            f"SMTP login to {where} as {settings.smtp_username!r} failed: {exc.smtp_code} "
            f"{_as_text(exc.smtp_error)} (check MUTABAQA_SMTP_USERNAME and "
            "MUTABAQA_SMTP_PASSWORD)",
            type=SMTP_UNAVAILABLE,
        ) from exc
    except (smtplib.SMTPException, OSError) as exc:
        raise ApplicationError(
            f"SMTP server {where} unavailable: {type(exc).__name__}: {exc}",
            type=SMTP_UNAVAILABLE,
        ) from exc
    return sorted(refused)


# --- recipients ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _RequestFacts:
    organization_id: str
    centre_code: str | None


def _active_with_role(users: list[User], role: Role) -> list[str]:
    return [user.email for user in users if not user.disabled and role.value in user.roles]


def _find_recipients(session: Session, params: NotifyInput, facts: _RequestFacts) -> list[str]:
    """Manufacturer-facing kinds: the organisation's active manufacturers. ``escalation``:
    active compliance officers and, when the request has a centre, its active technicians."""
    if params.kind is NotificationKind.ESCALATION:
        # Roles live in a JSON list (portable between SQLite and PostgreSQL): filter here.
        staff = list(session.exec(select(User).where(col(User.disabled).is_(False))).all())
        emails = _active_with_role(staff, Role.COMPLIANCE_OFFICER)
        centre = facts.centre_code or params.centre_code
        if centre is not None:
            emails += _active_with_role(
                [user for user in staff if user.centre_code == centre], Role.LAB_TECHNICIAN
            )
    else:
        members = session.exec(
            select(User).where(User.organization_id == facts.organization_id)
        ).all()
        emails = _active_with_role(list(members), Role.MANUFACTURER)
    return sorted(set(emails))


class NotificationActivities:
    def __init__(self, engine: Engine, settings: Settings) -> None:
        self._engine = engine
        self._settings = settings

    def _prepare(self, params: NotifyInput) -> tuple[NotifyInput, list[str]]:
        """Recipients from the database, and the centre's names filled in."""
        with Session(self._engine) as session:
            request = session.get(CertificationRequest, params.request_id)
            if request is None:
                raise ApplicationError(
                    f"notification {params.kind.value} for unknown request {params.request_id}",
                    type=NOTIFY_REQUEST_UNKNOWN,
                    non_retryable=True,
                )
            facts = _RequestFacts(request.organization_id, request.centre_code)
            recipients = _find_recipients(session, params, facts)
            centre_code = params.centre_code or request.centre_code
            if centre_code is not None and params.centre_name is None:
                centre = session.get(TechnicalCentre, centre_code)
                params = params.model_copy(
                    update={
                        "centre_code": centre_code,
                        "centre_name": centre.name if centre else None,
                        "centre_name_ar": centre.name_ar if centre else None,
                    }
                )
        return params, recipients

    @activity.defn(name="notify")
    def notify(self, params: NotifyInput) -> NotifyResult:
        """Tell the people concerned by e-mail; see the module docstring for retries."""
        message_id = message_id_for(params.dedupe_key)
        params, recipients = self._prepare(params)
        log = activity.logger
        if not recipients:
            log.warning(
                "notification %s for %s: nobody to notify", params.kind.value, params.request_number
            )
            return NotifyResult(recipients=[], message_id=message_id, sent=False)
        if self._settings.smtp_host is None:
            log.info(
                "SMTP not configured (MUTABAQA_SMTP_HOST): notification %s for %s to %s not sent",
                params.kind.value,
                params.request_number,
                ", ".join(recipients),
            )
            return NotifyResult(recipients=recipients, message_id=message_id, sent=False)
        msg = build_message(params, self._settings, recipients, now=datetime.now(UTC))
        refused = send_message(self._settings, msg, recipients)
        delivered = [address for address in recipients if address not in refused]
        if refused:
            log.warning(
                "notification %s for %s: server refused %s",
                params.kind.value,
                params.request_number,
                ", ".join(refused),
            )
        log.info(
            "notification %s for %s sent to %s (%s)",
            params.kind.value,
            params.request_number,
            ", ".join(delivered),
            message_id,
        )
        return NotifyResult(recipients=delivered, message_id=message_id, sent=True, refused=refused)
