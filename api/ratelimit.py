"""A per-client token bucket for the public routes (verification and directory).

Each client address owns a bucket of ``burst`` tokens, refilled at ``per_minute`` tokens a
minute; a request takes one token, and a request that finds the bucket empty is answered
429 with ``Retry-After`` (the whole seconds until a token is back).

The buckets live in the API process, so each instance counts on its own: behind several
API instances the effective limit is N times larger, and a deployment should rate-limit
at its reverse proxy too. Memory is bounded: at most ``max_clients`` buckets are kept and
the least recently used one is dropped first (a dropped bucket comes back full, which is
where an idle client's bucket would be anyway).

The client address is the ASGI ``client``. ``mutabaqa api`` has uvicorn believe
``X-Forwarded-For`` only from the proxies in ``MUTABAQA_FORWARDED_ALLOW_IPS``
(``mutabaqa/serve.py``): behind such a proxy the key is the caller's address, so each
client has its own bucket; from anyone else the header is ignored, so a client cannot
escape its bucket by inventing addresses.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import Request

from api.problems import Problem
from mutabaqa.settings import Settings

DEFAULT_MAX_CLIENTS = 10_000


@dataclass
class _Bucket:
    tokens: float
    at: float


class TokenBucketLimiter:
    """``take(key)`` returns 0 when a token was taken, else the seconds to wait."""

    def __init__(
        self,
        per_minute: int,
        burst: int,
        *,
        max_clients: int = DEFAULT_MAX_CLIENTS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if per_minute <= 0 or burst <= 0 or max_clients <= 0:
            raise ValueError("per_minute, burst and max_clients must be positive")
        self.rate = per_minute / 60.0  # tokens a second
        self.burst = float(burst)
        self.max_clients = max_clients
        self._clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, key: str) -> float:
        now = self._clock()
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = _Bucket(tokens=self.burst, at=now)
                self._buckets[key] = bucket
                while len(self._buckets) > self.max_clients:
                    self._buckets.popitem(last=False)
            else:
                self._buckets.move_to_end(key)
                elapsed = max(0.0, now - bucket.at)
                bucket.tokens = min(self.burst, bucket.tokens + elapsed * self.rate)
                bucket.at = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return 0.0
            return (1.0 - bucket.tokens) / self.rate

    def __len__(self) -> int:
        return len(self._buckets)


def _limiter(request: Request, settings: Settings) -> TokenBucketLimiter:
    """The application's limiter, made on first use from its settings (one per app)."""
    state = request.app.state
    limiter: TokenBucketLimiter | None = getattr(state, "public_rate_limiter", None)
    if limiter is None:
        limiter = TokenBucketLimiter(settings.public_rate_per_minute, settings.public_rate_burst)
        state.public_rate_limiter = limiter
    return limiter


async def public_rate_limit(request: Request) -> None:
    """Dependency of the public routers: 429 problem with ``Retry-After`` when the caller's
    bucket is empty. (``async`` so it runs on the event loop, never in a worker thread.)"""
    settings: Settings = request.app.state.ctx.settings
    client = request.client.host if request.client else "unknown"
    wait = _limiter(request, settings).take(client)
    if wait > 0:
        seconds = max(1, math.ceil(wait))
        raise Problem(
            429,
            "too-many-requests",
            "Too many requests",
            f"at most {settings.public_rate_per_minute} requests a minute "
            f"(bursts of {settings.public_rate_burst}); retry in {seconds} s",
            headers={"Retry-After": str(seconds)},
        )
