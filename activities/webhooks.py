"""Webhook deliveries: a signed JSON POST to the organisation's endpoint, retried with back-off.

What a receiver gets (one POST per event)::

    POST <the organisation's URL>
    Content-Type: application/json
    Mutabaqa-Event: certificate.suspended
    Mutabaqa-Delivery: <event id>          (the same on every retry: drop repeats)
    Mutabaqa-Signature: t=1767225600,v1=<64 hex digits>

    {"id": "<event id>", "type": "certificate.suspended", "created": "2026-...Z",
     "data": {...}}

Checking it (``verify_signature`` does exactly this, for receivers written in Python):

1. take ``t`` (Unix seconds) and every ``v1`` from ``Mutabaqa-Signature``;
2. compute ``HMAC-SHA256(key = the secret as its UTF-8 text, message = f"{t}." + raw body)``
   in lower-case hex over the raw bytes received (before any JSON parsing);
3. accept when it equals one ``v1`` (constant-time comparison) and ``t`` is within a few
   minutes of the receiver's clock (five by default): an old, replayed request fails.

The body is the same bytes on every attempt for one event; ``t`` and the signature are
renewed on each attempt.

Retries: any answer but 2xx, and any network error, raises a retryable ``ApplicationError``
and Temporal tries again with back-off (``WEBHOOK_RETRY_POLICY``: 1 s, 2 s, 4 s … at most
every 10 minutes, 20 attempts, about 2 hours in all). 4xx answers are retried too: from a
receiver they nearly always mean a misconfiguration (a route not deployed yet, a rotated
secret not rolled out) that the organisation fixes — and each attempt reads the current
URL and secret, so the fix lets the pending event through. Redirects are not followed
(configure the final URL). Deactivating the webhook cancels pending deliveries. An event
already delivered is never sent again, even if the activity is run again with the same
``event_id``; should a POST succeed and the worker die before recording it, the retry
repeats the POST with the same ``Mutabaqa-Delivery`` id, which receivers de-duplicate.

Each event has one row in ``webhook_delivery`` (attempts, last status code or error,
``delivered_at``) that the organisation reads through ``GET /api/v1/webhook/deliveries``.

Outside development, the URL must use port 80 or 443 (or one of
``MUTABAQA_WEBHOOK_ALLOWED_PORTS``) and resolve to public addresses only, and the POST goes
to the address that was checked (server-side request forgery, DNS rebinding:
``activities/webhook_targets.py``). The delivery log says why an attempt failed in a few
generic words ("connection refused by policy", "timeout", "HTTP 500"); the details
(addresses, the receiver's answer) are in the worker's log.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from temporalio import activity
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError

from activities.errors import present
from activities.webhook_targets import (
    DEFAULT_PORTS,
    Connector,
    DeliveryFailed,
    Resolver,
    deliver_pinned,
    http_connector,
    pin,
    system_resolver,
)
from models.accounts import new_id
from models.types import utcnow
from models.webhook_events import WebhookInput, WebhookResult
from models.webhooks import DeliveryStatus, Webhook, WebhookDelivery
from mutabaqa import __version__
from mutabaqa.db import session_scope
from mutabaqa.settings import Settings

#: Attempts per event before the delivery is given up (``failed`` in the log).
WEBHOOK_MAX_ATTEMPTS = 20
#: 1 s, 2 s, 4 s … at most every 10 minutes; 20 attempts span about two hours.
WEBHOOK_RETRY_POLICY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=10),
    maximum_attempts=WEBHOOK_MAX_ATTEMPTS,
)
#: One HTTP exchange (connect, send, first bytes of the answer) may take this long.
WEBHOOK_HTTP_TIMEOUT_SECONDS = 10.0
#: One attempt: two short transactions around the HTTP exchange.
WEBHOOK_START_TO_CLOSE = timedelta(seconds=30)

#: Error type of a failed attempt (retryable).
WEBHOOK_FAILED = "WebhookDeliveryFailed"

EVENT_HEADER = "Mutabaqa-Event"
DELIVERY_HEADER = "Mutabaqa-Delivery"
SIGNATURE_HEADER = "Mutabaqa-Signature"
SIGNATURE_VERSION = "v1"
#: How far a receiver should let ``t`` stray from its own clock.
DEFAULT_TOLERANCE_SECONDS = 300.0

_ERROR_MAX_LENGTH = 1000


# --- secrets and signatures (pure) -----------------------------------------------------------


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """Lower-case hex ``HMAC-SHA256(secret, f"{timestamp}." + body)``; the key is the
    secret's UTF-8 text, as shown to the organisation."""
    message = f"{timestamp}.".encode("ascii") + body
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def signature_header(secret: str, timestamp: int, body: bytes) -> str:
    """The ``Mutabaqa-Signature`` value: ``t=<unix seconds>,v1=<hex>``."""
    return f"t={timestamp},{SIGNATURE_VERSION}={sign(secret, timestamp, body)}"


def verify_signature(
    secret: str,
    header: str,
    body: bytes,
    *,
    tolerance_seconds: float = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> bool:
    """A receiver's check: ``header`` (``Mutabaqa-Signature``) signs ``body`` (the raw
    bytes received) with ``secret``, and its timestamp is within ``tolerance_seconds`` of
    ``now`` (Unix seconds; default the current time). Malformed headers are False."""
    timestamp: int | None = None
    candidates: list[str] = []
    for item in header.split(","):
        key, sep, value = item.strip().partition("=")
        if not sep:
            return False
        if key == "t":
            if timestamp is not None or not value.isdigit():
                return False
            timestamp = int(value)
        elif key == SIGNATURE_VERSION:
            candidates.append(value)
    if timestamp is None or not candidates:
        return False
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_seconds:
        return False
    expected = sign(secret, timestamp, body)
    # Compare every candidate, without stopping early.
    matches = [hmac.compare_digest(expected, candidate) for candidate in candidates]
    return any(matches)


def encode_body(payload: dict[str, Any]) -> bytes:
    """The exact bytes POSTed: compact UTF-8 JSON."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _iso(moment: datetime) -> str:
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def event_payload(params: WebhookInput, created: datetime) -> dict[str, Any]:
    return {
        "id": params.event_id,
        "type": params.event_type,
        "created": _iso(params.occurred_at or created),
        "data": params.model_dump(mode="json")["data"],
    }


# --- the activity ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Attempt:
    delivery_id: str
    event_id: str
    url: str
    secret: str
    body: bytes
    attempts: int
    delivered: bool
    status_code: int | None


def _attempt_number() -> int:
    try:
        return activity.info().attempt
    except RuntimeError:  # called outside an activity (a direct call)
        return 1


def _truncate(text: str) -> str:
    return text if len(text) <= _ERROR_MAX_LENGTH else text[: _ERROR_MAX_LENGTH - 1] + "…"


class WebhookActivities:
    """Delivers events to organisations' webhooks.

    ``allow_private_targets`` (default: in development only) permits any address and port,
    which production refuses (see the module docstring). ``resolver`` and ``connector``
    (default: the system's resolver, httpx) resolve the host and make the POST to a checked
    address; tests inject their own.
    """

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        *,
        allow_private_targets: bool | None = None,
        resolver: Resolver | None = None,
        connector: Connector | None = None,
    ) -> None:
        self._engine = engine
        self._settings = settings
        self._allow_private = (
            settings.is_development if allow_private_targets is None else allow_private_targets
        )
        self._allowed_ports = DEFAULT_PORTS | frozenset(settings.webhook_allowed_ports)
        self._resolver = resolver or system_resolver
        self._connector = connector or http_connector(WEBHOOK_HTTP_TIMEOUT_SECONDS)

    def _begin(self, params: WebhookInput) -> _Attempt | None:
        """Look up the webhook, record the event (once) and count this attempt.

        None when the organisation has no active webhook; a pending delivery of the event
        is then marked cancelled."""
        now = utcnow()
        with session_scope(self._engine) as session:
            webhook = session.get(Webhook, params.organization_id)
            if webhook is None or not webhook.active:
                self._cancel(session, params, now)
                return None
            dialect = session.get_bind().dialect.name
            insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
            session.execute(
                insert(WebhookDelivery)
                .values(
                    id=new_id(),
                    organization_id=params.organization_id,
                    event_id=params.event_id,
                    event_type=params.event_type,
                    url=webhook.url,
                    payload=event_payload(params, now),
                    status=DeliveryStatus.PENDING,
                    attempts=0,
                    created_at=now,
                    updated_at=now,
                )
                .on_conflict_do_nothing(index_elements=["organization_id", "event_id"])
            )
            delivery = session.exec(
                select(WebhookDelivery)
                .where(
                    WebhookDelivery.organization_id == params.organization_id,
                    WebhookDelivery.event_id == params.event_id,
                )
                .with_for_update()
            ).first()
            delivery = present(delivery, f"webhook delivery {params.event_id}")
            if delivery.status is not DeliveryStatus.DELIVERED:
                delivery.attempts += 1
                delivery.status = DeliveryStatus.PENDING
                delivery.url = webhook.url
                delivery.updated_at = now
                session.add(delivery)
            return _Attempt(
                delivery_id=delivery.id,
                event_id=delivery.event_id,
                url=webhook.url,
                secret=webhook.secret,
                body=encode_body(delivery.payload),
                attempts=delivery.attempts,
                delivered=delivery.status is DeliveryStatus.DELIVERED,
                status_code=delivery.last_status_code,
            )

    @staticmethod
    def _cancel(session: Session, params: WebhookInput, now: datetime) -> None:
        delivery = session.exec(
            select(WebhookDelivery).where(
                WebhookDelivery.organization_id == params.organization_id,
                WebhookDelivery.event_id == params.event_id,
            )
        ).first()
        if delivery is not None and delivery.status is DeliveryStatus.PENDING:
            delivery.status = DeliveryStatus.CANCELLED
            delivery.last_error = "the webhook was deactivated before the event was delivered"
            delivery.updated_at = now
            session.add(delivery)

    def _finish(self, delivery_id: str, *, status_code: int | None, error: str | None) -> None:
        now = utcnow()
        with session_scope(self._engine) as session:
            delivery = session.get(WebhookDelivery, delivery_id, with_for_update=True)
            if delivery is None:  # removed meanwhile (organisation deleted)
                return
            delivery.last_status_code = status_code
            delivery.updated_at = now
            if error is None:
                delivery.status = DeliveryStatus.DELIVERED
                delivery.delivered_at = now
                delivery.last_error = None
            else:
                delivery.last_error = _truncate(error)
                last = _attempt_number() >= WEBHOOK_MAX_ATTEMPTS
                delivery.status = DeliveryStatus.FAILED if last else DeliveryStatus.PENDING
            session.add(delivery)

    def give_up(self, params: WebhookInput, error: str) -> None:
        """The outbox gave up on this event (its retries are spent): ``failed`` in the log."""
        with session_scope(self._engine) as session:
            delivery = session.exec(
                select(WebhookDelivery).where(
                    WebhookDelivery.organization_id == params.organization_id,
                    WebhookDelivery.event_id == params.event_id,
                )
            ).first()
            if delivery is not None and delivery.status is DeliveryStatus.PENDING:
                delivery.status = DeliveryStatus.FAILED
                # The organisation reads this: the last attempt's generic reason, never the
                # outbox's detailed error.
                delivery.last_error = delivery.last_error or "delivery failed"
                delivery.updated_at = utcnow()
                session.add(delivery)

    def _post(self, attempt: _Attempt, event_type: str) -> tuple[int | None, DeliveryFailed | None]:
        """One POST: (status code, None) on 2xx, else (status code or None, the failure)."""
        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": f"Mutabaqa-Webhooks/{__version__}",
            EVENT_HEADER: event_type,
            DELIVERY_HEADER: attempt.event_id,
            SIGNATURE_HEADER: signature_header(attempt.secret, timestamp, attempt.body),
        }
        try:
            pinned = pin(
                attempt.url,
                self._resolver,
                allow_private=self._allow_private,
                allowed_ports=self._allowed_ports,
            )
            answer = deliver_pinned(pinned, self._connector, headers, attempt.body)
        except DeliveryFailed as failure:
            return None, failure
        code = answer.status_code
        if 200 <= code < 300:
            return code, None
        what = f"HTTP {code} {answer.reason}".strip()
        if 300 <= code < 400:
            return code, DeliveryFailed(
                f"HTTP {code} (redirects are not followed)",
                f"{what}: redirects are not followed (to {answer.location or '?'})",
            )
        detail = f"{what}: {answer.snippet}" if answer.snippet else what
        return code, DeliveryFailed(f"HTTP {code}", detail)

    @activity.defn(name="deliver_webhook")
    def deliver(self, params: WebhookInput) -> WebhookResult:
        """POST the event to the organisation's active webhook; see the module docstring."""
        attempt = self._begin(params)
        log = activity.logger
        if attempt is None:
            return WebhookResult(delivered=False)
        result = WebhookResult(
            delivered=True,
            attempts=attempt.attempts,
            status_code=attempt.status_code,
            delivery_id=attempt.delivery_id,
        )
        if attempt.delivered:
            return result
        status_code, failure = self._post(attempt, params.event_type)
        public = None if failure is None else failure.public
        self._finish(attempt.delivery_id, status_code=status_code, error=public)
        if failure is not None:
            log.warning(
                "webhook %s for organisation %s to %s, attempt %d: %s",
                params.event_id,
                params.organization_id,
                attempt.url,
                attempt.attempts,
                failure.detail,
            )
            raise ApplicationError(
                f"webhook delivery {params.event_id} to {attempt.url} failed: "
                f"{failure.public} ({_truncate(failure.detail)})",
                type=WEBHOOK_FAILED,
            )
        log.info(
            "webhook %s delivered to organisation %s (%s)",
            params.event_id,
            params.organization_id,
            status_code,
        )
        return result.model_copy(update={"status_code": status_code})
