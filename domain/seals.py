"""Seals: who may change a workflow. Every state-changing message sent to Temporal (a
workflow start, an Update, a Signal) carries an HMAC-SHA256 seal over what it says, made
with a key only the API and the workers hold. A workflow believes the actor of a message
only when the seal matches, so reaching the Temporal frontend is not enough to act.

This is the pure part, shared by both sides: the canonical bytes of a message and their
HMAC. The key is the shell's (``mutabaqa/seals.py`` binds it from the settings).

What is sealed, one field a line (UTF-8, newline-separated, each field JSON-encoded so no
field can spill into the next)::

    mutabaqa-seal/v1
    <workflow id>
    <kind>:<name>          start:<workflow type> | update:<name> | signal:<name>
    <actor user id>        "" when the message names no actor (a system step)
    <roles>                the actor's roles, as sent
    <idempotency key>      the message's ``key`` or ``idempotency_key``, "" when none
    <body digest>          sha256 of the canonical JSON of every argument
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Sequence
from enum import StrEnum
from typing import Any

#: The Temporal header that carries the seal.
SEAL_HEADER = "mutabaqa-seal"
VERSION = "v1"


class MessageKind(StrEnum):
    START = "start"
    UPDATE = "update"
    SIGNAL = "signal"


def canonical_json(value: Any) -> bytes:
    """JSON with sorted keys, no spaces, UTF-8: the same value gives the same bytes."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def body_digest(args: Sequence[Any]) -> str:
    """``sha256:<hex>`` of the message's arguments as JSON values."""
    return "sha256:" + hashlib.sha256(canonical_json(list(args))).hexdigest()


def _first(args: Sequence[Any]) -> dict[str, Any]:
    return args[0] if args and isinstance(args[0], dict) else {}


def message_bytes(workflow_id: str, kind: MessageKind, name: str, args: Sequence[Any]) -> bytes:
    """The canonical bytes a seal is computed over. ``args`` are the message's arguments
    as JSON values (what the data converter writes); the actor and the key are read from
    the first argument, as every payload that carries them names them."""
    first = _first(args)
    actor = first.get("actor") if isinstance(first.get("actor"), dict) else {}
    assert isinstance(actor, dict)
    key = first.get("key", first.get("idempotency_key")) or ""
    fields: list[Any] = [
        f"mutabaqa-seal/{VERSION}",
        workflow_id,
        f"{kind.value}:{name}",
        str(actor.get("user_id") or ""),
        [str(role) for role in actor.get("roles") or ()],
        str(key),
        body_digest(args),
    ]
    return b"\n".join(canonical_json(field) for field in fields)


def seal(key: bytes, workflow_id: str, kind: MessageKind, name: str, args: Sequence[Any]) -> str:
    """``v1=<hex HMAC-SHA256>`` of the message."""
    mac = hmac.new(key, message_bytes(workflow_id, kind, name, args), hashlib.sha256)
    return f"{VERSION}={mac.hexdigest()}"


def verify(
    key: bytes,
    presented: str | None,
    workflow_id: str,
    kind: MessageKind,
    name: str,
    args: Sequence[Any],
) -> bool:
    """Whether ``presented`` is the seal of this message (compared in constant time)."""
    if not presented:
        return False
    expected = seal(key, workflow_id, kind, name, args)
    return hmac.compare_digest(presented.encode("utf-8"), expected.encode("utf-8"))
