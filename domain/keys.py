"""Idempotency keys in two namespaces that cannot meet.

A key a client sends (``Idempotency-Key``) is recorded as ``client:<key>``; a key the
system makes for its own steps (intake, reminders, escalations, lapses, expiry…) as
``system:<step>:<instant>``. A client that sends ``intake:1`` therefore records
``client:intake:1``, which no system step ever looks up.
"""

from __future__ import annotations

CLIENT = "client:"
SYSTEM = "system:"


def client_key(key: str) -> str:
    """The recorded form of a client's ``Idempotency-Key`` (or of a key made up for a
    client call that sent none)."""
    return CLIENT + key


def system_key(step: str, *parts: object) -> str:
    """The key of one system step, e.g. ``system_key("intake", 1)`` → ``system:intake:1``."""
    return SYSTEM + ":".join([step, *(str(p) for p in parts)])


def update_id(key: str, body_hash: str) -> str:
    """The Update id of an action: its key and its body's digest, so that a key reused with
    another body is a different Update (judged by the record: 422), not a silent repeat of
    the first."""
    return f"{key}#{body_hash[:16]}" if body_hash else key
