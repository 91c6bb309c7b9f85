"""A real SMTP server for tests: aiosmtpd on 127.0.0.1, collecting what it receives.

Register the fixture once in ``tests/conftest.py`` (``pytest_plugins = ["tests.smtp"]``) and
point the settings at it: ``settings.model_copy(update=smtp_sink.settings_update())``.
"""

from __future__ import annotations

import email
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import default as default_policy
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from tests.tls import ServerPki

HOST = "127.0.0.1"


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class ReceivedMail:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage

    @property
    def body(self) -> str:
        part = self.message.get_body(preferencelist=("plain",))
        assert part is not None, "no text/plain part"
        content: str = part.get_content()
        return content


class _Handler:
    def __init__(self, sink: SmtpSink) -> None:
        self._sink = sink

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if address.lower() in self._sink.refuse:
            return "550 5.1.1 Mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or envelope.content
        assert isinstance(raw, bytes)
        message = email.message_from_bytes(raw, policy=default_policy)
        assert isinstance(message, EmailMessage)
        self._sink._received(
            ReceivedMail(str(envelope.mail_from), list(envelope.rcpt_tos), message)
        )
        return "250 Message accepted for delivery"


class SmtpSink:
    """An SMTP server on ``127.0.0.1:port`` that keeps every message it accepts.

    ``refuse``: addresses answered with a permanent 550 at ``RCPT``. ``credentials``: when
    given, ``AUTH`` (PLAIN or LOGIN) is required with this login. ``tls``: the server's
    certificate; STARTTLS is then offered and required before ``AUTH`` (without it, the
    server accepts ``AUTH`` in clear — a client must refuse that itself). ``logins`` lists
    every ``AUTH`` attempt received (login names).
    """

    def __init__(
        self,
        port: int | None = None,
        *,
        refuse: set[str] | None = None,
        credentials: tuple[str, str] | None = None,
        tls: ServerPki | None = None,
    ) -> None:
        self.port = port or free_port()
        self.refuse = {address.lower() for address in refuse or set()}
        self.credentials = credentials
        self.tls = tls
        self.logins: list[str] = []
        self._messages: list[ReceivedMail] = []
        self._changed = threading.Condition()
        self._controller: Controller | None = None

    # lifecycle

    def start(self) -> SmtpSink:
        kwargs: dict[str, Any] = {}
        if self.credentials is not None:
            kwargs.update(
                authenticator=self._authenticate,
                auth_required=True,
                auth_require_tls=self.tls is not None,
            )
        if self.tls is not None:
            kwargs.update(tls_context=self.tls.server_context(), require_starttls=True)
        self._controller = Controller(_Handler(self), hostname=HOST, port=self.port, **kwargs)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> SmtpSink:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def settings_update(self) -> dict[str, Any]:
        """Fields for ``Settings.model_copy(update=...)`` that send mail here."""
        update: dict[str, Any] = {"smtp_host": HOST, "smtp_port": self.port}
        if self.credentials is not None:
            from pydantic import SecretStr

            update.update(
                smtp_username=self.credentials[0], smtp_password=SecretStr(self.credentials[1])
            )
        if self.tls is not None:
            update.update(smtp_starttls=True, smtp_ca_file=self.tls.ca_file)
        return update

    # what arrived

    @property
    def messages(self) -> list[ReceivedMail]:
        with self._changed:
            return list(self._messages)

    def wait_for(
        self, predicate: Callable[[list[ReceivedMail]], bool], timeout: float = 10.0
    ) -> list[ReceivedMail]:
        """Block until ``predicate(messages)`` holds; return the messages, or fail the test."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate(list(self._messages)):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"SMTP sink: condition not met within {timeout} s; "
                        f"received {len(self._messages)} message(s)"
                    )
                self._changed.wait(remaining)
            return list(self._messages)

    def _received(self, mail: ReceivedMail) -> None:
        with self._changed:
            self._messages.append(mail)
            self._changed.notify_all()

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        if isinstance(data, LoginPassword):
            self.logins.append(data.login.decode())
        ok = (
            self.credentials is not None
            and isinstance(data, LoginPassword)
            and (data.login.decode(), data.password.decode()) == self.credentials
        )
        return AuthResult(success=ok, handled=False)  # a failure: the server answers 535


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    """A running SMTP sink on a free loopback port, stopped after the test."""
    sink = SmtpSink().start()
    try:
        yield sink
    finally:
        sink.stop()
