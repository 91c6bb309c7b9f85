"""Webhook subscriptions as the record keeps them."""

from __future__ import annotations

import base64
import secrets

#: Bytes of randomness in a subscription's signing secret.
SECRET_BYTES = 32


def new_secret() -> str:
    """32 random bytes, base64url without padding (43 characters)."""
    return base64.urlsafe_b64encode(secrets.token_bytes(SECRET_BYTES)).rstrip(b"=").decode()
