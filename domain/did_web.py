"""The ``did:web`` identifier of the deployment and where its DID document lives (W3C CCG
did:web method specification, "Method-specific identifier" and "Read (Resolve)").

Pure functions, no I/O. The DID is derived from the public base URL
(``MUTABAQA_PUBLIC_BASE_URL``), so a credential's issuer names the host that serves the
keys:

- the host, lower-cased; a port is kept with its colon percent-encoded (``%3A``), since a
  bare colon separates path segments;
- each path segment becomes a further ``:``-separated part;
- did:web forbids IP addresses: the loopback address ``127.0.0.1`` (the embedded default
  base URL) is written ``localhost``, any other IP address is refused;
- ``https`` is required, ``http`` is accepted for ``localhost`` only (development), in both
  directions.

The inverse gives the URL of the DID document: ``https://<host>/.well-known/did.json``
without a path, ``https://<host>/<path>/did.json`` with one.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import unquote, urlsplit

DID_WEB_PREFIX = "did:web:"
WELL_KNOWN_DID_PATH = "/.well-known/did.json"
#: Hosts a did:web may resolve over plain http (a development machine only).
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1"})

# DID Core 1.0 section 3.1: idchar = ALPHA / DIGIT / "." / "-" / "_" / pct-encoded.
_ID_PART = re.compile(r"(?:[A-Za-z0-9._-]|%[0-9A-Fa-f]{2})+")
_HOST = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*")
_SEGMENT = re.compile(r"(?:[A-Za-z0-9._~-]|%[0-9A-Fa-f]{2})+")


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def did_web_from_base_url(base_url: str) -> str:
    """``https://cert.example.ma`` → ``did:web:cert.example.ma``;
    ``http://localhost:8000`` → ``did:web:localhost%3A8000``;
    ``https://x.ma/a/b`` → ``did:web:x.ma:a:b``. ``ValueError`` names what does not fit."""
    parts = urlsplit(base_url.strip())
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http"):
        raise ValueError(f"a did:web base URL is https, not {base_url!r}")
    if parts.username is not None or parts.password is not None:
        raise ValueError("a did:web base URL carries no user name or password")
    if parts.query or parts.fragment:
        raise ValueError("a did:web base URL has no query and no fragment")
    host = (parts.hostname or "").lower()
    if host == "127.0.0.1":
        host = "localhost"  # did:web forbids IP addresses; the loopback has a name
    if not host:
        raise ValueError(f"no host in {base_url!r}")
    if _is_ip(host):
        raise ValueError(f"did:web forbids IP addresses ({host}); give the host's domain name")
    if not _HOST.fullmatch(host):
        raise ValueError(f"{host!r} is not an ASCII domain name (write IDNs in punycode)")
    if scheme == "http" and host not in LOCAL_HOSTS:
        raise ValueError(f"a did:web resolves over https; http is for localhost only ({host})")
    port = parts.port  # ValueError for a port that is no number
    authority = host if port is None else f"{host}%3A{port}"
    segments = parts.path.split("/")
    if segments and segments[0] == "":
        segments = segments[1:]
    if segments and segments[-1] == "":
        segments = segments[:-1]  # a trailing slash names the same place
    for segment in segments:
        if not _SEGMENT.fullmatch(segment) or segment in (".", ".."):
            raise ValueError(f"path segment {segment!r} of {base_url!r} cannot be in a did:web")
    # A DID has no "~" (DID Core idchar): it is percent-encoded, which names the same URL
    # path (RFC 3986 section 6.2.2.2). A colon would read as a separator: refused above.
    segments = [segment.replace("~", "%7E") for segment in segments]
    return DID_WEB_PREFIX + ":".join([authority, *segments])


def did_web_document_url(did: str) -> str:
    """The URL of the DID document of a did:web: ``did:web:x.ma:a:b`` →
    ``https://x.ma/a/b/did.json``; ``did:web:localhost%3A8000`` →
    ``http://localhost:8000/.well-known/did.json``. ``ValueError`` for anything else."""
    if not did.startswith(DID_WEB_PREFIX):
        raise ValueError(f"not a did:web: {did!r}")
    parts = did[len(DID_WEB_PREFIX) :].split(":")
    if not all(_ID_PART.fullmatch(part) for part in parts):
        raise ValueError(f"not a did:web (DID Core characters only, no query or fragment): {did!r}")
    authority = unquote(parts[0])
    host, _, port = authority.partition(":")
    host = host.lower()
    if port and not (port.isascii() and port.isdigit() and 0 < int(port) < 65536):
        raise ValueError(f"not a port: {port!r} in {did!r}")
    if not _HOST.fullmatch(host):
        raise ValueError(f"not a domain name: {host!r} in {did!r}")
    if _is_ip(host) and host not in LOCAL_HOSTS:
        raise ValueError(f"did:web forbids IP addresses: {did!r}")
    scheme = "http" if host in LOCAL_HOSTS else "https"
    path = "/" + "/".join(parts[1:]) + "/did.json" if len(parts) > 1 else WELL_KNOWN_DID_PATH
    return f"{scheme}://{authority.lower()}{path}"
