"""The first admin, created at start-up from ``MUTABAQA_ADMIN_EMAIL`` and
``MUTABAQA_ADMIN_PASSWORD`` when no account has that e-mail yet."""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlmodel import select

from api.security import hash_password
from domain.permissions import Role
from models.accounts import User
from models.audit import ADMIN_CHAIN
from mutabaqa.db import session_scope
from mutabaqa.settings import Settings
from records.audit import append_event

log = logging.getLogger(__name__)


def ensure_first_admin(engine: Engine, settings: Settings) -> bool:
    """Create the configured admin unless a user with that e-mail exists; True if created.

    Idempotent, and safe when several processes start together: the e-mail is unique, so
    the loser of a race gets an integrity error, rolls back and reports False. An existing
    account is never changed (its password, roles or disabled flag stay as they are).
    """
    email = settings.admin_email.strip().lower()
    try:
        with session_scope(engine) as session:
            if session.exec(select(User.id).where(User.email == email)).first() is not None:
                return False
            user = User(
                email=email,
                full_name="Administrator",
                roles=[Role.ADMIN.value],
                password_hash=hash_password(settings.admin_password.get_secret_value()),
            )
            session.add(user)
            session.flush()  # a racing process's account surfaces here as an IntegrityError
            append_event(
                session,
                chain=ADMIN_CHAIN,
                actor=None,
                actor_role="system",
                action="user.create",
                object_type="user",
                object_id=user.id,
                detail={"after": {"email": email, "roles": user.roles}, "bootstrap": True},
            )
    except IntegrityError:
        return False
    log.info("created the first admin account %s", email)
    return True


async def start_first_admin(
    engine: Engine, settings: Settings, *, retry_seconds: float = 2.0, max_retry: float = 60.0
) -> asyncio.Task[None] | None:
    """Run ``ensure_first_admin`` now; if the database cannot be reached, keep trying in
    a background task (returned, for the caller to cancel at shutdown), so that the API
    still starts and reports the database as down on ``/health``."""
    try:
        await asyncio.to_thread(ensure_first_admin, engine, settings)
        return None
    except DBAPIError as exc:
        log.warning("first admin not checked yet, database unavailable: %s", exc)

    async def retry() -> None:
        delay = retry_seconds
        while True:
            await asyncio.sleep(delay)
            try:
                await asyncio.to_thread(ensure_first_admin, engine, settings)
                return
            except DBAPIError as exc:
                log.warning("first admin not checked yet, database unavailable: %s", exc)
                delay = min(delay * 2, max_retry)

    return asyncio.create_task(retry(), name="mutabaqa-first-admin")
