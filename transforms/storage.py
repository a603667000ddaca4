"""Objects at a URI: a local path or ``s3://bucket/key``. The one place an S3 client is built.

Delta tables reach S3 through delta-rs (:mod:`transforms.lake`, storage options from the
environment); whole files (exports, their manifests, SIEM batches) come through here with boto3, at
``AWS_ENDPOINT_URL`` when it is set (MinIO, moto, a VPC endpoint).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Iterator

CHUNK_BYTES = 2**20
MULTIPART_BYTES = 64 * 2**20  # multipart uploads above 64 MiB, in 64 MiB parts


class StorageError(Exception):
    """The URI cannot be used (no bucket, cannot be checked); the message names it."""


def is_s3(uri: str) -> bool:
    return uri.startswith("s3://")


def s3_client():
    import boto3

    return boto3.client("s3", endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None)


def split_s3(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` → (bucket, key)."""
    bucket, _, key = uri[len("s3://"):].partition("/")
    if not bucket:
        raise StorageError(f"{uri}: names no bucket")
    return bucket, key


def exists(uri: str) -> bool:
    """Whether something is at ``uri``. Locally a symbolic link counts, dangling or not."""
    if is_s3(uri):
        from botocore.exceptions import ClientError

        bucket, key = split_s3(uri)
        try:
            s3_client().head_object(Bucket=bucket, Key=key)
            return True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise StorageError(f"{uri}: cannot be checked ({exc})") from None
    return os.path.lexists(uri)


def put_file(local: Path, uri: str) -> None:
    """Move (locally) or upload (S3) a finished local file to ``uri``."""
    if is_s3(uri):
        from boto3.s3.transfer import TransferConfig

        bucket, key = split_s3(uri)
        s3_client().upload_file(str(local), bucket, key, Config=TransferConfig(
            multipart_threshold=MULTIPART_BYTES, multipart_chunksize=MULTIPART_BYTES))
    else:
        target = Path(uri)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(local), target)


def put_bytes(uri: str, body: bytes, **extra: str) -> None:
    """Write one S3 object (``extra``: ``ContentType``, ``ContentEncoding``…). S3 only: local writers
    keep their own partial-file-then-rename step."""
    bucket, key = split_s3(uri)
    s3_client().put_object(Bucket=bucket, Key=key, Body=body, **extra)


def read_chunks(uri: str) -> Iterator[bytes]:
    """The object's bytes in 1 MiB chunks. A missing local file raises ``FileNotFoundError``."""
    if is_s3(uri):
        bucket, key = split_s3(uri)
        body = s3_client().get_object(Bucket=bucket, Key=key)["Body"]
        yield from iter(lambda: body.read(CHUNK_BYTES), b"")
    else:
        with open(uri, "rb") as handle:
            yield from iter(lambda: handle.read(CHUNK_BYTES), b"")
