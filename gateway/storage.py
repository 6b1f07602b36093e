"""Where outputs live, and the signed, expiring URLs that hand them to clients without the API key.

`LocalStorage` keeps files in a folder and signs `/v1/outputs/{name}` URLs with an HMAC (the gateway serves them);
`S3Storage` puts objects in an S3-compatible bucket and hands out presigned GET URLs. Both expire after
`output_url_ttl_s`; local files older than `output_retention_s` are deleted by the gateway (for S3, set a bucket
lifecycle rule).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import re
import secrets
import time
from pathlib import Path
from typing import Any, Protocol

from gateway.errors import NotFound, StorageUnavailable
from gateway.settings import Settings, local_secret

_NAME = re.compile(r"^[A-Za-z0-9_-]{32,64}\.(png|jpeg|webp)$")
EXPIRED = "no such output: it has expired or the link is not exactly as it was given"
STORAGE_FAILED = "the output could not be stored (the server's storage is full or not writable); nothing was charged"
log = logging.getLogger("replate.storage")


class Storage(Protocol):
    async def save(self, data: bytes, fmt: str) -> str:
        """Store one output; returns its key."""
        ...

    def url_for(self, key: str, base_url: str) -> str:
        """A URL that fetches the output without credentials until it expires."""
        ...

    async def delete_older_than(self, age_s: float) -> int:
        """Retention: delete outputs older than `age_s`; returns how many."""
        ...


def new_key(fmt: str) -> str:
    return f"{secrets.token_urlsafe(32)}.{fmt}"


class LocalStorage:
    def __init__(self, root: Path, signing_key: bytes, url_ttl_s: float) -> None:
        self.root = root
        self.signing_key = signing_key
        self.url_ttl_s = url_ttl_s
        self.root.mkdir(parents=True, exist_ok=True)

    async def save(self, data: bytes, fmt: str) -> str:
        key = new_key(fmt)
        try:
            await asyncio.to_thread(_write_atomically, self.root / key, data)
        except OSError as exc:  # full, read-only, gone: the client learns the class of problem, not our paths
            log.error("cannot store an output in %s: %s", self.root, exc.strerror or exc)
            raise StorageUnavailable(STORAGE_FAILED) from exc
        return key

    def url_for(self, key: str, base_url: str) -> str:
        expires = int(time.time() + self.url_ttl_s)
        return f"{base_url}/v1/outputs/{key}?expires={expires}&sig={self._signature(key, expires)}"

    def open(self, key: str, expires: int, signature: str) -> Path:
        """The file behind a signed URL; NotFound for a bad signature, an expired link or a deleted file."""
        valid = hmac.compare_digest(self._signature(key, expires).encode(), signature.encode())
        path = self.root / key
        if not (valid and _NAME.match(key) and expires >= time.time() and path.is_file()):
            raise NotFound(EXPIRED)
        return path

    async def delete_older_than(self, age_s: float) -> int:
        return await asyncio.to_thread(self._delete_older_than, age_s)

    def _delete_older_than(self, age_s: float) -> int:
        cutoff = time.time() - age_s
        old = [path for path in self.root.iterdir() if path.stat().st_mtime < cutoff]
        for path in old:
            path.unlink(missing_ok=True)
        return len(old)

    def _signature(self, key: str, expires: int) -> str:
        return hmac.new(self.signing_key, f"{key}:{expires}".encode(), hashlib.sha256).hexdigest()


class S3Storage:
    """Any S3-compatible store (AWS S3, MinIO, Ceph). Credentials come from the usual AWS environment/config."""

    def __init__(self, client: Any, bucket: str, prefix: str, url_ttl_s: float) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix
        self.url_ttl_s = url_ttl_s

    @classmethod
    def connect(
        cls, bucket: str, prefix: str, url_ttl_s: float, endpoint_url: str | None, region: str | None
    ) -> S3Storage:
        import boto3  # only deployments that use S3 pay for importing it

        client = boto3.client("s3", endpoint_url=endpoint_url or None, region_name=region or None)
        return cls(client, bucket, prefix, url_ttl_s)

    async def save(self, data: bytes, fmt: str) -> str:
        from botocore.exceptions import BotoCoreError, ClientError

        key = new_key(fmt)
        try:
            await asyncio.to_thread(
                self.client.put_object, Bucket=self.bucket, Key=self.prefix + key, Body=data, ContentType=f"image/{fmt}"
            )
        except (BotoCoreError, ClientError) as exc:
            log.error("cannot store an output in bucket %s: %s", self.bucket, exc)
            raise StorageUnavailable(STORAGE_FAILED) from exc
        return key

    def url_for(self, key: str, base_url: str) -> str:
        return self.client.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": self.prefix + key}, ExpiresIn=int(self.url_ttl_s)
        )

    async def delete_older_than(self, age_s: float) -> int:
        return 0  # a bucket lifecycle rule does this without the gateway listing the bucket


def create_storage(settings: Settings) -> LocalStorage | S3Storage:
    if settings.storage == "s3":
        return S3Storage.connect(
            settings.s3_bucket,
            settings.s3_prefix,
            settings.output_url_ttl_s,
            settings.s3_endpoint_url,
            settings.s3_region,
        )
    return LocalStorage(settings.outputs_dir, signing_key(settings), settings.output_url_ttl_s)


def signing_key(settings: Settings) -> bytes:
    """The configured secret, or a random key created once in the data folder (readable by its owner only)."""
    return local_secret(settings.url_signing_secret, settings.data_dir / "url-signing.key")


def _write_atomically(path: Path, data: bytes) -> None:
    partial = path.with_suffix(".partial")
    try:
        partial.write_bytes(data)
        partial.rename(path)
    except OSError:
        partial.unlink(missing_ok=True)  # a full disk must not also keep the bytes that did fit
        raise
