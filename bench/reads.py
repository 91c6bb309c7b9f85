"""Read paths at scale: 100,000 requests and 20,000 certificates, on SQLite and PostgreSQL.

    .venv/bin/python bench/reads.py [--databases sqlite,postgresql] [--requests 100000]
        [--certificates 20000] [--seconds 15] [--connections 8] [--rate 100]
        [--rate-seconds 20] [--pg-admin-dsn postgresql://postgres@127.0.0.1:5432/postgres]

For each database: a fresh one (an SQLite file in a temporary directory; a PostgreSQL
database created on the given server and dropped at the end), migrated and seeded with the
reference data, then bulk-written in the shape ``tests/bulk.py`` states (a few years of a
certification body: 20 % of requests certified, the rest across the other statuses, each
with its documents, sample, results, report and audit events as far as it went). Then the
product's own API process (``mutabaqa api``, one process, as deployed; no worker, Temporal
or S3 store is needed to read) on a free loopback port, and for each read:

- **throughput**: ``--connections`` clients in a closed loop for ``--seconds``, right after
  the same for the trivial endpoint (``GET /api/v1/users/me``: authenticated like the
  others, one user lookup, no other query); prints both rates and their ratio (goal:
  ≥ 0.3, ``/verify`` ≥ 0.5);
- **latency at a fixed rate**: ``--rate`` requests per second for ``--rate-seconds``, each
  sent at its scheduled instant whether or not the previous ones have answered (an open
  loop, so a slow answer cannot hold back the next request and hide its own delay: the
  latency counts from the scheduled instant); prints p50, p99 and max (goal: p99 < 20 ms at
  100 req/s).

The reads: one request (the officer, a random request past draft), the request list with
filters (the officer, status, centre and scheme; the manufacturer, a word of the product
name), the
public directory search (a holder's name) and the public ``/verify/{number}`` JSON (a random
certificate). The public rate limit is raised for the run (it would answer 429 first).
Every non-200 answer is counted and printed (0: no answer within 30 s): there should be
none. The load generator
(httpx, asyncio) runs in this process, beside the API on the same machine: on a 2-core
machine they share the cores, which lowers both rates alike. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mutabaqa.db import create_db_engine  # noqa: E402
from mutabaqa.devstack import free_port  # noqa: E402
from mutabaqa.migrate import upgrade  # noqa: E402
from mutabaqa.seed import seed  # noqa: E402
from mutabaqa.settings import Settings  # noqa: E402
from tests.bulk import PASSWORD, Seeded, Shape, bulk_seed  # noqa: E402

API = "/api/v1"
GOALS = {"verify": 0.5}
RATIO_GOAL = 0.3
P99_GOAL_MS = 20.0


@dataclass
class Read:
    name: str
    path: Callable[[random.Random], str]
    who: str  # officer, maker or public


@dataclass
class Figures:
    rate: float = 0.0
    errors: dict[int, int] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)

    def count(self, status: int) -> None:
        if status != 200:
            self.errors[status] = self.errors.get(status, 0) + 1

    def percentile(self, p: float) -> float:
        values = sorted(self.latencies_ms)
        return values[min(len(values) - 1, int(p * len(values)))] if values else float("nan")


def reads_of(seeded: Seeded, shape: Shape) -> list[Read]:
    submitted = seeded.submitted_request_ids
    numbers = seeded.certificate_numbers
    statuses = ["application_review", "awaiting_sample", "testing", "evaluated", "certified"]
    schemes = ["FFP2-NM-EN-149", "MEDMASK-IIR-NM-EN-14683"]
    organizations = max(1, shape.requests // shape.requests_per_organization)
    holders = [f"Fabricant {o:05d}" for o in range(organizations)]
    return [
        Read("trivial", lambda r: f"{API}/users/me", "officer"),
        Read("request", lambda r: f"{API}/requests/{r.choice(submitted)}", "officer"),
        Read(
            "request list",
            # every bulk request is at CTTH (the centre of both mask schemes' sector)
            lambda r: (
                f"{API}/requests?status={r.choice(statuses)}&centre=CTTH"
                f"&scheme={r.choice(schemes)}&limit=20"
            ),
            "officer",
        ),
        Read("own requests", lambda r: f"{API}/requests?q=masque&limit=20", "maker"),
        Read("directory", lambda r: f"{API}/directory?q={r.choice(holders)}&limit=20", "public"),
        Read("verify", lambda r: f"{API}/verify/{r.choice(numbers)}", "public"),
    ]


async def closed_loop(
    base: str, read: Read, headers: dict[str, str], connections: int, seconds: float
) -> Figures:
    figures = Figures()
    done = 0
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits) as client:

        async def loop(seed: int, until: float) -> None:
            nonlocal done
            rng = random.Random(seed)
            while time.monotonic() < until:
                response = await client.get(read.path(rng))
                figures.count(response.status_code)
                done += 1

        # a short warm-up (connections open, caches filled), then the measured run
        warm = time.monotonic() + min(2.0, seconds / 5)
        await asyncio.gather(*(loop(i, warm) for i in range(connections)))
        done = 0
        figures.errors.clear()
        start = time.monotonic()
        await asyncio.gather(*(loop(100 + i, start + seconds) for i in range(connections)))
        figures.rate = done / (time.monotonic() - start)
    return figures


async def open_loop(
    base: str, read: Read, headers: dict[str, str], rate: float, seconds: float
) -> Figures:
    figures = Figures()
    total = int(rate * seconds)
    rng = random.Random(7)
    paths = [read.path(rng) for _ in range(total)]
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=50)
    async with httpx.AsyncClient(
        base_url=base, headers=headers, limits=limits, timeout=httpx.Timeout(30, pool=60)
    ) as client:

        async def one(path: str, due: float) -> None:
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            try:
                response = await client.get(path)
            except httpx.TimeoutException:  # counted as an error, its latency as the wait
                figures.count(0)
            else:
                figures.count(response.status_code)
            figures.latencies_ms.append((time.monotonic() - due) * 1000)

        for path in paths[: int(rate)]:  # one second of warm-up, not counted
            await client.get(path)
        start = time.monotonic() + 0.1
        await asyncio.gather(*(one(p, start + i / rate) for i, p in enumerate(paths)))
        figures.rate = total / (time.monotonic() - start)
    return figures


def login(base: str, email: str) -> dict[str, str]:
    response = httpx.post(
        f"{base}{API}/auth/token", data={"username": email, "password": PASSWORD}, timeout=30
    )
    response.raise_for_status()
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def start_api(env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "mutabaqa", "api", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--log-level", "warning"]
    with log.open("ab") as out:
        proc = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            # /health answers 503 here (no Temporal, no S3 store: reads need neither)
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=5)
            return proc
        except httpx.TransportError:
            pass
        if proc.poll() is not None:
            raise SystemExit(f"the API exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
        time.sleep(0.3)
    stop(proc)
    raise SystemExit(f"the API did not start within 60 s:\n{log.read_text()[-3000:]}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run_database(kind: str, args: argparse.Namespace, work: Path) -> list[str]:
    pg_name = None
    if kind == "sqlite":
        url = f"sqlite:///{work / 'reads.db'}"
    else:
        pg_name = f"mutabaqa_reads_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(args.pg_admin_dsn, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{pg_name}"')
        info = psycopg.conninfo.conninfo_to_dict(args.pg_admin_dsn)
        url = (
            f"postgresql+psycopg://{info.get('user', 'postgres')}@"
            f"{info.get('host', '127.0.0.1')}:{info.get('port', 5432)}/{pg_name}"
        )
    env = {k: v for k, v in os.environ.items() if not k.startswith("MUTABAQA_")}
    env |= {
        "MUTABAQA_ENV": "development",
        "MUTABAQA_DATA_DIR": str(work / f"data-{kind}"),
        "MUTABAQA_DATABASE_URL": url,
        "MUTABAQA_PUBLIC_RATE_PER_MINUTE": "100000000",
        "MUTABAQA_PUBLIC_RATE_BURST": "100000000",
    }
    proc = None
    try:
        os.environ |= {k: v for k, v in env.items() if k.startswith("MUTABAQA_")}
        settings = Settings()
        upgrade(url, settings=settings)
        engine = create_db_engine(url)
        started = time.monotonic()
        seed(engine)
        shape = Shape(requests=args.requests, certificates=args.certificates)
        seeded = bulk_seed(engine, shape)
        if kind == "postgresql":
            with engine.begin() as conn:
                conn.exec_driver_sql("ANALYZE")
        engine.dispose()
        print(
            f"[{kind}] {args.requests} requests, {len(seeded.certificate_numbers)} certificates "
            f"written in {time.monotonic() - started:.0f} s",
            flush=True,
        )
        subprocess.run(
            [sys.executable, "-m", "mutabaqa", "keys", "init"],
            env=env,
            check=True,
            capture_output=True,
        )
        port = free_port()
        proc = start_api(env, port, work / f"api-{kind}.log")
        base = f"http://127.0.0.1:{port}"
        tokens = {
            "officer": login(base, seeded.officer_email),
            "maker": login(base, seeded.manufacturer_email),
            "public": {"Accept": "application/json"},
        }
        return asyncio.run(measure(kind, base, reads_of(seeded, shape), tokens, args))
    finally:
        if proc is not None:
            stop(proc)
        for key in env:
            if key.startswith("MUTABAQA_"):
                os.environ.pop(key, None)
        if pg_name is not None:
            with psycopg.connect(args.pg_admin_dsn, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')


async def measure(
    kind: str,
    base: str,
    reads: list[Read],
    tokens: dict[str, dict[str, str]],
    args: argparse.Namespace,
) -> list[str]:
    trivial, others = reads[0], reads[1:]
    rows = []
    for read in others:
        base_figures = await closed_loop(
            base, trivial, tokens[trivial.who], args.connections, args.seconds
        )
        figures = await closed_loop(base, read, tokens[read.who], args.connections, args.seconds)
        fixed = await open_loop(base, read, tokens[read.who], args.rate, args.rate_seconds)
        ratio = figures.rate / base_figures.rate
        goal = GOALS.get(read.name, RATIO_GOAL)
        errors = {**base_figures.errors, **figures.errors, **fixed.errors}
        p99 = fixed.percentile(0.99)
        row = (
            f"| {kind} | {read.name} | {figures.rate:.0f} | {base_figures.rate:.0f} | "
            f"{ratio:.2f} (goal ≥ {goal}: {'met' if ratio >= goal else 'NOT met'}) | "
            f"{fixed.percentile(0.5):.1f} | {p99:.1f} (goal < {P99_GOAL_MS:.0f}: "
            f"{'met' if p99 < P99_GOAL_MS else 'NOT met'}) | {max(fixed.latencies_ms):.1f} | "
            f"{sum(errors.values()) or 0}{' ' + str(errors) if errors else ''} |"
        )
        print(row, flush=True)
        rows.append(row)
    return rows


HEADER = (
    "| database | read | req/s | trivial req/s | ratio | p50 ms | p99 ms | max ms | non-200 |\n"
    "|---|---|---|---|---|---|---|---|---|"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--certificates", type=int, default=20_000)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--rate-seconds", type=float, default=20.0)
    parser.add_argument(
        "--pg-admin-dsn",
        default=os.environ.get(
            "MUTABAQA_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mutabaqa-reads-"))
    rows: list[str] = []
    try:
        print(HEADER, flush=True)
        for kind in args.databases.split(","):
            rows += run_database(kind.strip(), args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("\nAll figures:\n" + HEADER)
    print("\n".join(rows))
    p99s = [r for r in rows if "NOT met" in r]
    print(f"\n{len(rows) - len(p99s)} of {len(rows)} reads meet both goals.")


if __name__ == "__main__":
    main()
