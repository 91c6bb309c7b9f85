"""Cold start: how long a new installation takes to serve, and its first certificate.

    .venv/bin/python bench/cold_start.py [--rounds 2]

Each round, in a fresh temporary directory:

1. the baseline: the Temporal dev server alone (the same binary and database file kind
   ``mutabaqa dev`` uses), from launch until its gRPC port accepts — the floor of any
   start of the embedded stack;
2. **first start**: ``mutabaqa dev`` on an empty data directory (SQLite created and
   migrated, reference data seeded, signing keys and the development CA made, the S3 store,
   Temporal, the API and the worker started) until ``/health`` answers ``ok``;
3. **first certificate**: one FFP2 request walked through the API from creation to an
   active certificate with its PDF (``tests/walker.py``), then a second one (warm);
4. **restart**: the stack stopped (SIGINT, by PID) and started again on the same data
   directory until ``/health`` answers ``ok``.

Prints each time, the ratios to the baseline (first start / Temporal alone, restart /
Temporal alone) and the first walk's time against the second's; the best round of each.
A benchmark, not a test: the figures depend on the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from pipeline import Stack  # noqa: E402

from models import search_attributes  # noqa: E402
from mutabaqa.devstack import TemporalPorts, start_temporal  # noqa: E402
from mutabaqa.settings import Environment, Settings  # noqa: E402
from tests.walker import make_people, walk  # noqa: E402

HEALTH_SECONDS = 300.0
WALK_SECONDS = 600.0


def temporal_alone(directory: Path) -> float:
    started = time.monotonic()
    proc = start_temporal(directory, TemporalPorts.free(), search_attributes.ALL, ui=False)
    seconds = time.monotonic() - started
    proc.stop()
    return seconds


async def two_walks(url: str, settings: Settings) -> tuple[float, float]:
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        people = await make_people(
            http, settings.admin_email, settings.admin_password.get_secret_value()
        )
        times = []
        for _ in range(2):
            result = await walk(http, people, timeout=WALK_SECONDS)
            if not result.ok:
                raise RuntimeError(f"the walk failed: {result}")
            times.append(result.total_seconds)
        return times[0], times[1]


def one_round() -> dict[str, float]:
    work = Path(tempfile.mkdtemp(prefix="mutabaqa-bench-cold-"))
    figures: dict[str, float] = {}
    stack = Stack(work / "stack", None)
    (work / "stack").mkdir()
    try:
        figures["temporal alone"] = temporal_alone(work / "baseline")
        started = time.monotonic()
        stack.start()
        stack.wait_healthy(HEALTH_SECONDS)
        figures["first start"] = time.monotonic() - started
        settings = Settings(env=Environment.DEVELOPMENT, data_dir=stack.data_dir)
        first, second = asyncio.run(two_walks(stack.url, settings))
        figures["first certificate"] = first
        figures["second certificate"] = second
        stack.stop()
        restarted = time.monotonic()
        stack.start()
        stack.wait_healthy(HEALTH_SECONDS)
        figures["restart"] = time.monotonic() - restarted
    finally:
        stack.stop()
        shutil.rmtree(work, ignore_errors=True)
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2, help="rounds (1..5; default 2)")
    args = parser.parse_args(argv)
    rounds = [one_round() for _ in range(max(1, min(args.rounds, 5)))]
    for number, figures in enumerate(rounds, 1):
        print(f"round {number}: " + ", ".join(f"{k} {v:.1f} s" for k, v in figures.items()))
    best = {key: min(r[key] for r in rounds) for key in rounds[0]}
    base = best["temporal alone"]
    print(f"\nbest of {len(rounds)} round(s):")
    print(f"  Temporal dev server alone (baseline): {base:.1f} s")
    print(f"  first start:  {best['first start']:.1f} s ({best['first start'] / base:.1f}×)")
    print(f"  restart:      {best['restart']:.1f} s ({best['restart'] / base:.1f}×)")
    print(
        f"  first certificate {best['first certificate']:.1f} s, second "
        f"{best['second certificate']:.1f} s "
        f"({best['first certificate'] / best['second certificate']:.2f}×)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
