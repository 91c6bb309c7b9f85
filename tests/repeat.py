"""Run a marked group of tests several times in a row, with cores kept busy.

    python -m tests.repeat                       # timers and concurrency, 10 times, 1 busy core
    python -m tests.repeat --times 3 --busy 0 -m timers

Timer and concurrency tests wait on real clocks and race real processes; on a loaded
machine a margin too tight shows as a failure one run in ten. This runner proves the
margins: it starts ``--busy`` spinning processes (each one core at 100 %, bounded by
``--max-minutes``), runs ``pytest -m <expression>`` up to ``--times`` times, stops at the
first failing run (its output is kept) and prints one line per run and how busy the
spinners really were. Every process it starts it ends, by PID.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

#: One spinner: a busy loop that ends by itself after argv[1] seconds.
SPIN = (
    "import sys, time\n"
    "end = time.monotonic() + float(sys.argv[1])\n"
    "while time.monotonic() < end:\n"
    "    pass\n"
)
#: pytest's last line: "36 passed, 1574 deselected in 301.2s (0:05:01)", with or without "=".
SUMMARY = re.compile(r"^=*\s*(\d+ (?:passed|failed|error).*?) in [\d.]+s", re.MULTILINE)


@dataclass
class Run:
    number: int
    returncode: int
    seconds: float
    summary: str


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a running process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_once(number: int, expression: str, log: Path) -> Run:
    started = time.monotonic()
    command = [sys.executable, "-m", "pytest", "-m", expression, "-q", "-p", "no:cacheprovider"]
    with log.open("w") as out:
        done = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, check=False)
    seconds = time.monotonic() - started
    matches = SUMMARY.findall(log.read_text())
    return Run(number, done.returncode, seconds, matches[-1] if matches else "no summary")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-m", dest="expression", default="timers or concurrency")
    parser.add_argument("--times", type=int, default=10)
    parser.add_argument("--busy", type=int, default=1, help="cores kept busy (spinning processes)")
    parser.add_argument("--max-minutes", type=float, default=150.0, help="bound on the spinners")
    parser.add_argument("--logs", type=Path, default=Path("repeat-logs"))
    args = parser.parse_args(argv)
    args.logs.mkdir(parents=True, exist_ok=True)

    bound = args.max_minutes * 60
    spinners = [
        subprocess.Popen([sys.executable, "-c", SPIN, str(bound)]) for _ in range(args.busy)
    ]
    began = time.monotonic()
    runs: list[Run] = []
    busy_cores = 0.0
    try:
        for number in range(1, args.times + 1):
            if time.monotonic() - began > bound:
                print(f"stopped: {args.max_minutes} minutes are up", flush=True)
                break
            run = run_once(number, args.expression, args.logs / f"run-{number}.log")
            runs.append(run)
            verdict = "passed" if run.returncode == 0 else f"FAILED (exit {run.returncode})"
            print(f"run {number}: {verdict} in {run.seconds:.0f} s — {run.summary}", flush=True)
            if run.returncode != 0:
                print(f"its output: {args.logs / f'run-{number}.log'}", flush=True)
                break
        elapsed = time.monotonic() - began
        busy_cores = sum(cpu_seconds(s.pid) for s in spinners if s.poll() is None) / elapsed
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()

    passed = sum(1 for r in runs if r.returncode == 0)
    print(
        f"{passed} of {args.times} runs of -m '{args.expression}' passed in a row, "
        f"{args.busy} spinner(s) asked, {busy_cores:.2f} core(s) kept busy on average, "
        f"{os.cpu_count()} cores in all"
    )
    return 0 if passed == args.times else 1


if __name__ == "__main__":
    raise SystemExit(main())
