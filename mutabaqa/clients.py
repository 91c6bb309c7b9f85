"""Client factories shared by the API, the worker, the CLI and the tests.

Every Temporal client uses the pydantic data converter, so payload models round-trip, with
the payload codec (``mutabaqa/codec.py``): what Temporal stores is encrypted; and seals
every message it sends (``mutabaqa/seals.py``).
"""

from __future__ import annotations

from urllib.parse import urlsplit

import urllib3
from minio import Minio
from minio.objectlockconfig import ObjectLockConfig
from temporalio.client import Client
from temporalio.runtime import Runtime

from mutabaqa.codec import data_converter
from mutabaqa.request_ids import RequestIdClientInterceptor
from mutabaqa.seals import SealingInterceptor, seal_key
from mutabaqa.settings import Settings
from mutabaqa.tracing import tracing_interceptors


async def connect_temporal(
    settings: Settings, *, lazy: bool = False, runtime: Runtime | None = None
) -> Client:
    """The one way to a Temporal client: encrypted payloads, every start, Update and
    Signal sealed (``mutabaqa/seals.py``) and carrying the request id
    (``mutabaqa/request_ids.py``); traced when ``MUTABAQA_OTEL_ENABLED`` (``mutabaqa/tracing.py``).
    ``runtime``: the worker's, when it serves the SDK's metrics."""
    converter = data_converter(settings)
    return await Client.connect(
        settings.resolved_temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=converter,
        interceptors=[
            *tracing_interceptors(settings),
            SealingInterceptor(seal_key(settings), converter.payload_converter),
            RequestIdClientInterceptor(),
        ],
        lazy=lazy,
        runtime=runtime,
    )


def _minio_for(endpoint: str, settings: Settings, http_client: urllib3.PoolManager) -> Minio:
    parts = urlsplit(endpoint if "://" in endpoint else f"http://{endpoint}")
    if not parts.netloc:
        raise ValueError(f"object store endpoint {endpoint!r} has no host")
    return Minio(
        parts.netloc,
        access_key=settings.s3_access_key,
        secret_key=settings.s3_secret_key.get_secret_value(),
        secure=parts.scheme == "https",
        region=settings.s3_region,
        http_client=http_client,
    )


def make_object_store(settings: Settings, *, timeout: float = 30.0, retries: int = 3) -> Minio:
    """The S3 client for the configured endpoint, with bounded timeouts and retries."""
    http = urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=min(timeout, 5.0), read=timeout),
        retries=urllib3.Retry(
            total=retries, backoff_factor=0.2, status_forcelist=(500, 502, 503, 504)
        ),
        maxsize=16,
    )
    return _minio_for(settings.resolved_s3_endpoint, settings, http)


def make_presigning_store(settings: Settings) -> Minio:
    """A client that signs URLs for the public S3 endpoint (it never opens a connection)."""
    endpoint = settings.s3_public_endpoint or settings.resolved_s3_endpoint
    return _minio_for(endpoint, settings, urllib3.PoolManager())


def ensure_buckets(store: Minio, settings: Settings) -> list[str]:
    """Create the buckets if missing (object lock, hence versioning, on both); return new ones.

    Object lock can only be chosen when a bucket is created; retention itself is applied
    per object once the workflow has recorded it (see ARCHITECTURE).
    """
    created = []
    for bucket in (settings.s3_evidence_bucket, settings.s3_certificates_bucket):
        if not store.bucket_exists(bucket):
            store.make_bucket(bucket, object_lock=True)
            created.append(bucket)
    return created


def object_lock_enabled(store: Minio, bucket: str) -> bool:
    config: ObjectLockConfig = store.get_object_lock_config(bucket)
    return config is not None
