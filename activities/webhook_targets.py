"""Where a webhook may be delivered, and delivering it there only (server-side request forgery).

An organisation names a URL; the worker must not be made to reach anything but a public
web server with it. One attempt:

1. **Resolve once.** The host is resolved a single time (``Resolver``).
2. **Check every address.** Each address must be public: not loopback, private, link-local,
   shared, reserved, multicast or documentation space, and not one of the IPv6 forms that
   carry or reach an IPv4 address — IPv4-mapped (``::ffff:0:0/96``), IPv4-compatible
   (``::/96``), NAT64 (``64:ff9b::/96``, ``64:ff9b:1::/48``), 6to4 (``2002::/16``), Teredo
   (``2001::/32``) — whatever the IPv4 address inside. The port must be 80 or 443, or one of
   ``MUTABAQA_WEBHOOK_ALLOWED_PORTS``. One refused address refuses the whole attempt.
3. **Connect to a checked address** (``Connector``): the request goes to that IP (the
   next checked one if it cannot be reached) and never to the name again, so a DNS answer
   that changes between the check and the connection (DNS rebinding) changes nothing. The
   ``Host`` header stays the URL's, and over https the TLS server name (SNI) and the
   certificate check are for the URL's host name, not for the IP.

Development (``MUTABAQA_ENV=development``) allows any address and port, for receivers on
the developer's machine.

What the organisation reads in its delivery log is one of a few generic phrases
(``OrganisationError``): "connection refused by policy", "timeout", "HTTP 500"… — never an
address, a resolver's message or the receiver's answer. The details are for the operators:
the worker's log and the activity's failure.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: Ports a webhook may use without being listed in ``MUTABAQA_WEBHOOK_ALLOWED_PORTS``.
DEFAULT_PORTS = frozenset({80, 443})

#: IPv6 ranges that embed or reach IPv4 (or are otherwise not a plain public host).
_REFUSED_V6 = tuple(
    (ipaddress.IPv6Network(net), name)
    for net, name in (
        ("::ffff:0:0/96", "IPv4-mapped"),
        ("::/96", "IPv4-compatible"),
        ("64:ff9b::/96", "NAT64"),
        ("64:ff9b:1::/48", "local-use NAT64"),
        ("2002::/16", "6to4"),
        ("2001::/32", "Teredo"),
    )
)

# What the organisation's delivery log says (never more).
REFUSED_BY_POLICY = "connection refused by policy"
NOT_RESOLVED = "host name not resolved"
TIMEOUT = "timeout"
CONNECTION_FAILED = "connection failed"
TLS_FAILED = "TLS handshake failed"


class DeliveryFailed(Exception):
    """One attempt failed: ``public`` for the organisation, ``detail`` for the operators."""

    def __init__(self, public: str, detail: str) -> None:
        super().__init__(detail)
        self.public = public
        self.detail = detail


def refusal(address: IPAddress) -> str | None:
    """Why ``address`` is not a public destination, or None when it is."""
    if isinstance(address, ipaddress.IPv6Address):
        for network, name in _REFUSED_V6:
            if address in network:
                return f"{address} is an {name} address"
    if address.is_multicast:
        return f"{address} is a multicast address"
    if not address.is_global:
        return f"{address} is not a public address"
    return None


@dataclass(frozen=True)
class Pinned:
    """A URL checked for one attempt: its host name and port, and the addresses (all
    checked) the attempt may connect to, in the resolver's order."""

    url: str
    host: str
    port: int
    addresses: tuple[IPAddress, ...]

    @property
    def https(self) -> bool:
        return urlsplit(self.url).scheme == "https"


#: ``(host, port) -> addresses``: raises ``OSError`` when the name does not resolve.
Resolver = Callable[[str, int], Sequence[IPAddress]]


def system_resolver(host: str, port: int) -> list[IPAddress]:
    """The addresses the system's resolver gives for ``host`` (deduplicated, in order)."""
    found: list[IPAddress] = []
    for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if address not in found:
            found.append(address)
    return found


def pin(
    url: str,
    resolver: Resolver,
    *,
    allow_private: bool = False,
    allowed_ports: frozenset[int] = DEFAULT_PORTS,
) -> Pinned:
    """Resolve ``url``'s host once and check the port and every address; raise
    ``DeliveryFailed`` when the attempt must not be made."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    if not allow_private and port not in allowed_ports:
        raise DeliveryFailed(
            REFUSED_BY_POLICY,
            f"port {port} of {host!r} is not allowed (80, 443 and "
            "MUTABAQA_WEBHOOK_ALLOWED_PORTS only)",
        )
    try:
        addresses = tuple(resolver(host, port))
    except (OSError, UnicodeError) as exc:
        raise DeliveryFailed(NOT_RESOLVED, f"cannot resolve {host!r}: {exc}") from exc
    if not addresses:
        raise DeliveryFailed(NOT_RESOLVED, f"{host!r} resolves to no address")
    if not allow_private:
        for address in addresses:
            reason = refusal(address)
            if reason is not None:
                raise DeliveryFailed(
                    REFUSED_BY_POLICY,
                    f"{host!r} resolves to {address}: {reason}; webhooks are delivered to "
                    "public addresses only",
                )
    return Pinned(url=url, host=host, port=port, addresses=addresses)


@dataclass(frozen=True)
class Answer:
    """What the receiver answered (the body is read for the operators' log only)."""

    status_code: int
    reason: str
    location: str | None = None
    snippet: str = ""


#: ``(pinned, address, headers, body) -> Answer``: one POST to ``address`` (one of
#: ``pinned.addresses``) for ``pinned.url``; raises ``DeliveryFailed`` when there is no answer.
Connector = Callable[[Pinned, IPAddress, Mapping[str, str], bytes], Answer]

_SNIPPET_BYTES = 300


def _ip_url(pinned: Pinned, address: IPAddress) -> str:
    parts = urlsplit(pinned.url)
    literal = f"[{address}]" if address.version == 6 else str(address)
    return urlunsplit((parts.scheme, f"{literal}:{pinned.port}", parts.path, parts.query, ""))


def _host_header(pinned: Pinned) -> str:
    host = f"[{pinned.host}]" if ":" in pinned.host else pinned.host
    default = 443 if pinned.https else 80
    return host if pinned.port == default else f"{host}:{pinned.port}"


def http_connector(timeout: float, *, verify: ssl.SSLContext | bool = True) -> Connector:
    """The real connector: httpx to the IP itself, with the URL's ``Host`` header and, over
    https, the host name as TLS server name (SNI) and for the certificate check (against
    the system's CAs; ``verify``: another trust store). No proxy from the environment, no
    redirects."""

    def post(pinned: Pinned, address: IPAddress, headers: Mapping[str, str], body: bytes) -> Answer:
        extensions = {}
        if pinned.https:
            try:
                ipaddress.ip_address(pinned.host)
            except ValueError:  # a name: SNI and the certificate are for it
                extensions["sni_hostname"] = pinned.host
        request_headers = {**headers, "Host": _host_header(pinned)}
        try:
            with (
                httpx.Client(
                    timeout=timeout, follow_redirects=False, trust_env=False, verify=verify
                ) as client,
                client.stream(
                    "POST",
                    _ip_url(pinned, address),
                    content=body,
                    headers=request_headers,
                    extensions=extensions,
                ) as answer,
            ):
                snippet = b""
                if not answer.is_success:
                    for chunk in answer.iter_bytes():
                        snippet += chunk
                        if len(snippet) >= _SNIPPET_BYTES:
                            break
                return Answer(
                    status_code=answer.status_code,
                    reason=answer.reason_phrase,
                    location=answer.headers.get("location"),
                    snippet=snippet[:_SNIPPET_BYTES].decode("utf-8", "replace").strip(),
                )
        except httpx.TimeoutException as exc:
            raise DeliveryFailed(TIMEOUT, f"{address}: {type(exc).__name__}: {exc}") from exc
        except httpx.ConnectError as exc:
            text = str(exc)
            public = TLS_FAILED if "SSL" in text or "certificate" in text else CONNECTION_FAILED
            raise DeliveryFailed(public, f"{address}: ConnectError: {text}") from exc
        except httpx.HTTPError as exc:
            detail = f"{address}: {type(exc).__name__}: {exc or 'no answer'}"
            raise DeliveryFailed(CONNECTION_FAILED, detail) from exc

    return post


def deliver_pinned(
    pinned: Pinned, connector: Connector, headers: Mapping[str, str], body: bytes
) -> Answer:
    """POST through ``connector`` to the first checked address that can be reached (a
    timeout or an answer ends the attempt: the request may have been received)."""
    failures: list[str] = []
    for address in pinned.addresses:
        try:
            return connector(pinned, address, headers, body)
        except DeliveryFailed as exc:
            failures.append(exc.detail)
            if exc.public != CONNECTION_FAILED:
                raise DeliveryFailed(exc.public, "; ".join(failures)) from exc
    raise DeliveryFailed(CONNECTION_FAILED, "; ".join(failures))
