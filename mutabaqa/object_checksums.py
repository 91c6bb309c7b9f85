"""S3 SHA-256 checksums of stored objects: what the API sends and what the worker checks.

The API sends every part of an upload with ``x-amz-checksum-sha256`` (the base64 SHA-256 of
the part's bytes); the store verifies it on receipt and refuses the part (``BadDigest``)
when the bytes it received differ. A single PUT's checksum is the SHA-256 of the whole
object; a multipart object's is *composite*: the SHA-256 of the concatenated binary
digests of its parts, in order, followed by ``-N`` (N parts). It is not the file's
SHA-256, and cannot be turned into it without the bytes. docs/uploads.md explains what
the worker concludes from it.

minio's client has no API for these checksums (7.2): :func:`stored_sha256_checksum` sends
the ``HeadObject`` itself, through the client's signed ``_execute``.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence

from minio import Minio

#: The request header of a part's or object's SHA-256, and the response header of HeadObject.
CHECKSUM_HEADER = "x-amz-checksum-sha256"
#: Sent on CreateMultipartUpload: the parts come with SHA-256 checksums.
ALGORITHM_HEADER = "x-amz-checksum-algorithm"
#: Sent on HeadObject: answer with the stored checksum.
MODE_HEADER = "x-amz-checksum-mode"


def b64(digest: bytes) -> str:
    """A binary digest as S3 writes checksums."""
    return base64.b64encode(digest).decode("ascii")


def composite(part_sha256: Sequence[str]) -> str:
    """The composite checksum S3 gives an object made of parts with these hex SHA-256s."""
    joined = b"".join(bytes.fromhex(part) for part in part_sha256)
    return f"{b64(hashlib.sha256(joined).digest())}-{len(part_sha256)}"


def expected_checksum(sha256: str, part_sha256: Sequence[str]) -> str:
    """What the store must report for an upload with this file digest and these parts.

    One part is a single PUT: its checksum is the file's own SHA-256, so it must equal
    ``sha256``. More parts: the composite of the parts' digests."""
    if len(part_sha256) == 1:
        if part_sha256[0] != sha256:
            raise ValueError("a single part's digest must be the file's")
        return b64(bytes.fromhex(sha256))
    if not part_sha256:
        raise ValueError("no part digests")
    return composite(part_sha256)


def stored_sha256_checksum(
    store: Minio, bucket: str, key: str, version_id: str | None
) -> str | None:
    """The SHA-256 checksum the store holds for that version of the object (HeadObject with
    checksum mode), or None when it holds none (stored without one, or a store without
    checksum support)."""
    query: dict[str, str | list[str] | tuple[str]] | None = (
        {"versionId": version_id} if version_id else None
    )
    response = store._execute(
        "HEAD", bucket, key, headers={MODE_HEADER: "ENABLED"}, query_params=query
    )
    value = response.headers.get(CHECKSUM_HEADER)
    return str(value) if value else None
