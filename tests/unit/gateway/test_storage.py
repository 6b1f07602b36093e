"""Output storage: signed expiring local URLs, retention, and an S3-compatible store (moto on 127.0.0.1)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gateway.errors import NotFound
from gateway.settings import Settings
from gateway.storage import LocalStorage, S3Storage, create_storage, signing_key


async def test_local_urls_expire_and_cannot_be_forged(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path, b"secret", url_ttl_s=60)
    key = await storage.save(b"\x89PNG...", "png")
    url = httpx.URL(storage.url_for(key, "https://cdn.example"))
    assert url.path == f"/v1/outputs/{key}" and url.host == "cdn.example"
    expires, sig = int(url.params["expires"]), url.params["sig"]
    assert storage.open(key, expires, sig).read_bytes() == b"\x89PNG..."
    assert 59 <= expires - time.time() <= 61
    with pytest.raises(NotFound):
        storage.open(key, expires + 1, sig)
    with pytest.raises(NotFound):
        LocalStorage(tmp_path, b"other secret", url_ttl_s=60).open(key, expires, sig)
    expired = LocalStorage(tmp_path, b"secret", url_ttl_s=-1)
    stale = httpx.URL(expired.url_for(key, "https://cdn.example"))
    with pytest.raises(NotFound):
        expired.open(key, int(stale.params["expires"]), stale.params["sig"])


async def test_retention_deletes_only_old_outputs(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path, b"secret", url_ttl_s=60)
    old, new = await storage.save(b"old", "png"), await storage.save(b"new", "png")
    two_days_ago = time.time() - 2 * 86400
    os.utime(tmp_path / old, (two_days_ago, two_days_ago))
    assert await storage.delete_older_than(86400) == 1
    assert sorted(path.name for path in tmp_path.iterdir()) == [new]


def test_the_generated_signing_key_persists_and_is_private(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    first = signing_key(settings)
    assert len(first) == 64 and signing_key(settings) == first
    assert (tmp_path / "url-signing.key").stat().st_mode & 0o077 == 0
    assert signing_key(Settings(data_dir=tmp_path, url_signing_secret="configured")) == b"configured"


@pytest.fixture
def s3_endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    for name, value in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}.items():
        monkeypatch.setenv(name, value)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


async def test_s3_outputs_are_fetched_through_presigned_urls(s3_endpoint: str, tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path, storage="s3", s3_bucket="outputs", s3_endpoint_url=s3_endpoint, s3_region="us-east-1"
    )
    storage = create_storage(settings)
    assert isinstance(storage, S3Storage)
    storage.client.create_bucket(Bucket="outputs")
    key = await storage.save(b"RIFF....WEBP", "webp")
    url = storage.url_for(key, "ignored")
    assert "Signature" in url or "X-Amz-Signature" in url
    response = httpx.get(url)
    assert response.status_code == 200 and response.content == b"RIFF....WEBP"
    assert response.headers["content-type"] == "image/webp"
    assert httpx.get(url.split("?")[0]).status_code == 403


def test_s3_needs_a_bucket(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="REPLATE_S3_BUCKET"):
        Settings(data_dir=tmp_path, storage="s3")
