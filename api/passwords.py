"""A bound on concurrent password hashes in the API process.

One Argon2id hash takes 64 MiB and most of a core for a moment: forty logins at once would
take gigabytes and every core. ``PasswordGate`` lets at most ``limit`` hashes run at a
time (``MUTABAQA_PASSWORD_HASH_CONCURRENCY``); a caller that cannot start one within
``wait_seconds`` (``MUTABAQA_PASSWORD_HASH_WAIT_SECONDS``) gets 503 with ``Retry-After``.
Waiting happens on the event loop (it holds no thread); the hash itself runs in the thread
pool.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

from starlette.concurrency import run_in_threadpool

from api.problems import Problem
from api.security import hash_password, verify_password

T = TypeVar("T")

#: Seconds a caller refused for a busy hasher is asked to wait.
BUSY_RETRY_AFTER_SECONDS = 1


class HasherBusy(Problem):
    def __init__(self) -> None:
        super().__init__(
            503,
            "unavailable",
            "Service unavailable",
            "too many passwords are being checked right now; retry in a moment",
            headers={"Retry-After": str(BUSY_RETRY_AFTER_SECONDS)},
        )


class PasswordGate:
    def __init__(self, limit: int, wait_seconds: float) -> None:
        self.limit = limit
        self.wait_seconds = wait_seconds
        self._slots = asyncio.Semaphore(limit)
        #: Hashes computed through this gate, and the most ever running at once.
        self.computed = 0
        self.peak = 0
        self._running = 0

    async def _run(self, fn: Callable[..., T], *args: object) -> T:
        try:
            await asyncio.wait_for(self._slots.acquire(), timeout=self.wait_seconds)
        except TimeoutError:
            raise HasherBusy() from None
        self.computed += 1
        self._running += 1
        self.peak = max(self.peak, self._running)
        try:
            return await run_in_threadpool(fn, *args)
        finally:
            self._running -= 1
            self._slots.release()

    async def hash(self, password: str) -> str:
        """``api.security.hash_password`` within the bound."""
        return await self._run(hash_password, password)

    async def verify(self, password: str, password_hash: str | None) -> bool:
        """``api.security.verify_password`` within the bound (``None``: no such account,
        checked against a dummy hash all the same)."""
        return await self._run(verify_password, password, password_hash)
