"""Upload throughput and memory: the API's streaming engine against a direct S3 put.

    .venv/bin/python bench/upload.py [--size-mib 1024] [--part-size-mib 16] [--rounds 2]

Starts its own S3 store (SeaweedFS) and a small API process exposing the upload engine
(``bench/upload_app.py``), both on loopback, then sends the same pseudo-random bytes,
generated on the fly and never held whole, (a) straight to S3 with minio's multipart
``put_object(length=-1, part_size=P)`` and (b) as a multipart form through the API, whose
engine puts them to S3 with the same part size. Prints bytes, seconds and MB/s for each,
the throughput ratio API/direct and the growth of the API process' peak RSS (VmHWM), and
whether the goals are met (ratio >= 0.8, growth < 64 MiB), from the best run of each path
over ``--rounds`` rounds in alternating order, with the store's writes flushed before each
run. Also prints the CPU seconds each process used. Stops everything it started.
A benchmark, not a test: the figures depend on the machine.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, cast

import httpx
from minio import Minio
from pydantic import SecretStr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mutabaqa.clients import ensure_buckets, make_object_store
from mutabaqa.devstack import (
    ChildProcess,
    S3Ports,
    free_port,
    spawn,
    start_s3,
    wait_until,
)
from mutabaqa.settings import Environment, MiB, Settings

ROOT = Path(__file__).resolve().parents[1]
GOAL_RATIO = 0.8
GOAL_GROWTH_MIB = 64
CHUNK = MiB
TIMEOUT_SECONDS = 600.0


class PseudoRandom:
    """``size`` reproducible pseudo-random bytes starting with a PDF signature.

    Each 1 MiB chunk is a 1 MiB random pool rotated by a random offset: cheap to make, no
    two chunks alike, never more than two chunks in memory.
    """

    HEAD = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"

    def __init__(self, size: int, seed: int = 2024) -> None:
        self.size = size
        self._rng = random.Random(seed)
        self._pool = self._rng.randbytes(CHUNK)
        self._sent = 0

    def chunks(self) -> Iterator[bytes]:
        while self._sent < self.size:
            offset = self._rng.randrange(CHUNK)
            chunk = self._pool[offset:] + self._pool[:offset]
            if self._sent == 0:
                chunk = self.HEAD + chunk[len(self.HEAD) :]
            chunk = chunk[: self.size - self._sent]
            self._sent += len(chunk)
            yield chunk

    def reader(self) -> BinaryIO:
        """The bytes as the file object minio's ``put_object`` reads."""
        return cast(BinaryIO, Reader(self.chunks()))


class Reader:
    """A file object over chunks whose ``read(n)`` returns ``n`` bytes (as minio wants)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._rest = b""

    def read(self, size: int = -1) -> bytes:
        pieces, got = [self._rest], len(self._rest)
        while size < 0 or got < size:
            chunk = next(self._chunks, b"")
            if not chunk:
                break
            pieces.append(chunk)
            got += len(chunk)
        data = b"".join(pieces)
        if size < 0:
            self._rest = b""
            return data
        self._rest = data[size:]
        return data[:size]


@dataclass
class Run:
    name: str
    size: int
    seconds: float
    cpu: dict[str, float] = field(default_factory=dict)  # CPU seconds per process

    @property
    def mb_per_s(self) -> float:
        return self.size / self.seconds / 1e6


def status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} missing from /proc/{pid}/status")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process (and its finished children)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(value) for value in fields[11:15]) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU seconds each watched process spends between ``start()`` and ``stop()``."""

    def __init__(self, pids: dict[str, int]) -> None:
        self._pids = pids
        self._start: dict[str, float] = {}

    def start(self) -> None:
        self._start = {name: cpu_seconds(pid) for name, pid in self._pids.items()}

    def stop(self) -> dict[str, float]:
        return {name: cpu_seconds(pid) - self._start[name] for name, pid in self._pids.items()}


def form(boundary: str, data: PseudoRandom) -> tuple[int, Iterator[bytes]]:
    head = (
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="kind"\r\n\r\nbench\r\n'
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="file"; filename="bench.pdf"\r\n'
        "Content-Type: application/pdf\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()

    def body() -> Iterator[bytes]:
        yield head
        yield from data.chunks()
        yield tail

    return len(head) + data.size + len(tail), body()


def start_api(settings: Settings, workdir: Path) -> tuple[ChildProcess, str]:
    port = free_port()
    env = {
        "MUTABAQA_ENV": "development",
        "MUTABAQA_S3_ENDPOINT": settings.resolved_s3_endpoint,
        "MUTABAQA_S3_ACCESS_KEY": settings.s3_access_key,
        "MUTABAQA_S3_SECRET_KEY": settings.s3_secret_key.get_secret_value(),
        "MUTABAQA_S3_EVIDENCE_BUCKET": settings.s3_evidence_bucket,
        "MUTABAQA_UPLOAD_PART_SIZE": str(settings.upload_part_size),
        "MUTABAQA_MAX_UPLOAD_BYTES": str(settings.max_upload_bytes),
        "TMPDIR": str(workdir),
    }
    argv = [sys.executable, str(ROOT / "bench" / "upload_app.py"), str(port)]
    proc = spawn("api", argv, log=workdir / "logs" / "api.log", env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(
            lambda: httpx.get(url + "/openapi.json").status_code == 200,
            timeout=30,
            what="API",
            proc=proc,
        )
    except BaseException:
        proc.stop()
        raise
    return proc, url


def post_through_api(url: str, data: PseudoRandom, key: str) -> tuple[Run, dict[str, Any]]:
    boundary = uuid.uuid4().hex
    length, body = form(boundary, data)
    headers = {
        "Content-Type": f"multipart/form-data; boundary={boundary}",
        "Content-Length": str(length),
    }
    started = time.perf_counter()
    response = httpx.post(
        f"{url}/upload", params={"key": key}, content=body, headers=headers, timeout=TIMEOUT_SECONDS
    )
    seconds = time.perf_counter() - started
    if response.status_code != 201:
        raise RuntimeError(f"API answered {response.status_code}: {response.text}")
    return Run("API (multipart form)", data.size, seconds), response.json()


def put_through_api(store: Minio, url: str, data: PseudoRandom, sha256: str) -> Run:
    """One timed upload through the API; checks the digest it reports, then removes it."""
    run, body = post_through_api(url, data, f"bench/api-{uuid.uuid4().hex}")
    if body["sha256"] != sha256 or body["size"] != data.size:
        raise RuntimeError(f"API upload: digest or size differs: {body}")
    store.remove_object(body["bucket"], body["key"], version_id=body["version_id"])
    return run


def put_direct(store: Minio, bucket: str, data: PseudoRandom, part_size: int) -> Run:
    """One timed multipart put straight to S3; checks the stored size, then removes it."""
    key = f"bench/direct-{uuid.uuid4().hex}"
    started = time.perf_counter()
    result = store.put_object(
        bucket, key, data.reader(), -1, part_size=part_size, content_type="application/pdf"
    )
    seconds = time.perf_counter() - started
    if store.stat_object(bucket, key, version_id=result.version_id).size != data.size:
        raise RuntimeError("direct upload: stored size differs")
    store.remove_object(bucket, key, version_id=result.version_id)
    return Run("direct S3 put_object", data.size, seconds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--part-size-mib", type=int, default=16)
    parser.add_argument(
        "--rounds", type=int, default=2, help="rounds, in alternating order (1..5; default 2)"
    )
    args = parser.parse_args(argv)
    size, part_size = args.size_mib * MiB, args.part_size_mib * MiB
    rounds = max(1, min(args.rounds, 5))
    if not 1 <= args.size_mib <= 8192 or part_size < 5 * MiB:
        parser.error("size must be 1..8192 MiB and the part size at least 5 MiB")

    workdir = Path(tempfile.mkdtemp(prefix="mutabaqa-bench-upload-"))
    secret = "bench-" + uuid.uuid4().hex
    ports = S3Ports.free()
    settings = Settings(
        env=Environment.DEVELOPMENT,
        data_dir=workdir,
        s3_endpoint=f"http://127.0.0.1:{ports.s3}",
        s3_access_key="bench",
        s3_secret_key=SecretStr(secret),
        upload_part_size=part_size,
        max_upload_bytes=size,
    )
    store = make_object_store(settings, timeout=TIMEOUT_SECONDS)
    bucket = settings.s3_evidence_bucket
    started: list[ChildProcess] = []
    try:
        probe = make_object_store(settings, timeout=2.0, retries=0)
        started.append(
            start_s3(
                workdir, ports, "bench", secret, ready=lambda: probe.list_buckets() is not None
            )
        )
        ensure_buckets(store, settings)
        api, url = start_api(settings, workdir)
        started.append(api)

        print(f"expected SHA-256 of {size} bytes ...", flush=True)
        expected = hashlib.sha256()
        for chunk in PseudoRandom(size).chunks():
            expected.update(chunk)

        # Warm up both paths with a small file (imports, connections), then take the baseline:
        # the growth then counts every part buffer the big upload needs.
        post_through_api(url, PseudoRandom(256 * 1024), "bench/warm-api")
        store.put_object(
            bucket, "bench/warm", PseudoRandom(256 * 1024).reader(), -1, part_size=part_size
        )
        hwm_before, rss_before = status_kib(api.pid, "VmHWM"), status_kib(api.pid, "VmRSS")

        meter = CpuMeter({"bench": os.getpid(), "API": api.pid, "S3": started[0].pid})
        direct_runs: list[Run] = []
        api_runs: list[Run] = []
        for round_no in range(rounds):
            # Alternate the order, and flush the store's writes before each run, so neither
            # path inherits the other's disk write-back.
            order = ("direct", "api") if round_no % 2 == 0 else ("api", "direct")
            for which in order:
                os.sync()
                time.sleep(1.0)
                meter.start()
                if which == "direct":
                    run = put_direct(store, bucket, PseudoRandom(size), part_size)
                    direct_runs.append(run)
                else:
                    run = put_through_api(store, url, PseudoRandom(size), expected.hexdigest())
                    api_runs.append(run)
                run.cpu = meter.stop()
        hwm_after, rss_after = status_kib(api.pid, "VmHWM"), status_kib(api.pid, "VmRSS")
    finally:
        for proc in reversed(started):
            proc.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    direct = max(direct_runs, key=lambda r: r.mb_per_s)
    through_api = max(api_runs, key=lambda r: r.mb_per_s)
    ratio = through_api.mb_per_s / direct.mb_per_s
    growth_mib = (hwm_after - hwm_before) / 1024
    print(
        f"\nsize {size} bytes ({args.size_mib} MiB), part size {args.part_size_mib} MiB, "
        f"best of {rounds} round(s)"
    )
    for run in (direct, through_api):
        print(
            f"  {run.name:<22} {run.size:>12} bytes  {run.seconds:7.2f} s  {run.mb_per_s:7.1f} MB/s"
            "  (CPU s: " + ", ".join(f"{name} {sec:.1f}" for name, sec in run.cpu.items()) + ")"
        )
    print(
        f"  throughput ratio API/direct: {ratio:.2f} (goal >= {GOAL_RATIO})"
        f" {'met' if ratio >= GOAL_RATIO else 'NOT met'}"
    )
    print(
        f"  API peak RSS (VmHWM) growth: {growth_mib:.1f} MiB (goal < {GOAL_GROWTH_MIB})"
        f" {'met' if growth_mib < GOAL_GROWTH_MIB else 'NOT met'}"
        f"  [VmHWM {hwm_before // 1024} -> {hwm_after // 1024} MiB,"
        f" VmRSS {rss_before // 1024} -> {rss_after // 1024} MiB]"
    )
    if len(direct_runs) > 1:
        for number, (d, a) in enumerate(zip(direct_runs, api_runs, strict=True), start=1):
            print(
                f"  round {number}: direct {d.mb_per_s:.0f} MB/s, API {a.mb_per_s:.0f} MB/s,"
                f" ratio {a.mb_per_s / d.mb_per_s:.2f}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
