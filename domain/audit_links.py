"""How audit events are linked: HMAC-SHA256 under a key the database does not hold.

Each event's link is ``HMAC-SHA256(key, prev_link ‖ canonical)`` (hex), where ``prev_link``
is the previous event's link (64 zeros for the first event) and ``canonical`` the event's
RFC 8785 JSON. Someone who can write the database but does not hold the key cannot
recompute a chain after editing it. Each event records which key linked it by a short key
id (derived from the key, it reveals nothing about it), so that the key can be rotated:
retired keys keep verifying the events they linked.

Pure: the standard library only.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass, field

GENESIS_LINK = "0" * 64

#: The audit key of the development mode. Outside development, settings refuse it
#: (``MUTABAQA_AUDIT_KEY`` must be set); processes that never set a key use it.
DEVELOPMENT_AUDIT_KEY = "change-me-audit-key"

_KEY_ID_LABEL = b"mutabaqa-audit-key-id"


def key_id(key: bytes) -> str:
    """The key's public name: 16 hex digits of an HMAC of a fixed label."""
    return hmac.new(key, _KEY_ID_LABEL, hashlib.sha256).hexdigest()[:16]


def keyed_link(key: bytes, prev_link: str, canonical: bytes) -> str:
    return hmac.new(key, prev_link.encode("ascii") + canonical, hashlib.sha256).hexdigest()


def plain_link(prev_link: str, canonical: bytes) -> str:
    """The unkeyed SHA-256 link of events written before revision 0009 (the migration
    re-links them; kept to check the old chain before it does)."""
    return hashlib.sha256(prev_link.encode("ascii") + canonical).hexdigest()


@dataclass(frozen=True)
class AuditKeys:
    """The active audit key (links new events) and retired ones (verify old events)."""

    active: bytes
    retired: tuple[bytes, ...] = ()
    _by_id: dict[str, bytes] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.active:
            raise ValueError("the audit key must not be empty")
        by_id = {key_id(key): key for key in self.retired if key}
        by_id[key_id(self.active)] = self.active
        object.__setattr__(self, "_by_id", by_id)

    @classmethod
    def from_secrets(cls, active: str, retired: Iterable[str] = ()) -> AuditKeys:
        return cls(active.encode("utf-8"), tuple(k.encode("utf-8") for k in retired))

    @property
    def active_id(self) -> str:
        return key_id(self.active)

    def link(self, prev_link: str, canonical: bytes) -> tuple[str, str]:
        """``(key id, link)`` of a new event under the active key."""
        return self.active_id, keyed_link(self.active, prev_link, canonical)

    def knows(self, link_key: str) -> bool:
        return link_key in self._by_id

    def check(self, link_key: str, prev_link: str, canonical: bytes, link: str) -> bool:
        """True when ``link`` is the HMAC of the event under the key named ``link_key``."""
        key = self._by_id.get(link_key)
        if key is None:
            return False
        return hmac.compare_digest(keyed_link(key, prev_link, canonical), link)
