"""Where a certificate's events and actions are kept in the record."""

from __future__ import annotations


def certificate_chain(number: str) -> str:
    return f"certificate:{number}"


def transition_key(key: str) -> str:
    """The ``request_action`` key that records a certificate action's ``Idempotency-Key``."""
    return f"certificate:{key}"
