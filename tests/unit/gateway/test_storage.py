"""Output storage: signed expiring local URLs, retention, an S3-compatible store (moto on 127.0.0.1), and what a
store that cannot write means for a request: 503 `storage_unavailable`, the hold released, nothing charged."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gateway.errors import NotFound, StorageUnavailable
from gateway.settings import Settings
from gateway.storage import STORAGE_FAILED, LocalStorage, S3Storage, create_storage, signing_key
from tests.conftest import data_url
from tests.unit.gateway.conftest import auth
from tests.unit.gateway.test_predictions import poll


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


async def test_s3_refusing_a_put_is_storage_unavailable(s3_endpoint: str, tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path, storage="s3", s3_bucket="missing", s3_endpoint_url=s3_endpoint, s3_region="us-east-1"
    )
    with pytest.raises(StorageUnavailable, match="nothing was charged"):
        await create_storage(settings).save(b"png", "png")


async def test_an_unwritable_folder_is_storage_unavailable_without_naming_it(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "outputs", b"secret", url_ttl_s=60)
    storage.root.rmdir()
    storage.root.write_text("a file where the folder was")
    with pytest.raises(StorageUnavailable) as raised:
        await storage.save(b"png", "png")
    assert raised.value.message == STORAGE_FAILED and str(tmp_path) not in raised.value.message


async def test_a_write_that_fails_midway_leaves_no_partial_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def disk_full(self: Path, target: Path) -> Path:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "rename", disk_full)
    storage = LocalStorage(tmp_path, b"secret", url_ttl_s=60)
    with pytest.raises(StorageUnavailable):
        await storage.save(b"png", "png")
    assert list(tmp_path.iterdir()) == []


async def test_requests_whose_output_cannot_be_stored_are_not_charged(client, make_key, settings, studio_png) -> None:
    key = await make_key(20)
    settings.outputs_dir.rmdir()
    settings.outputs_dir.write_text("a file where the folder was")
    image = data_url(studio_png)
    sync = await client.post(
        "/v1/image/replace-background", json={"image_url": image, "bg_color": "#ffffff"}, headers=auth(key)
    )
    assert sync.status_code == 503 and sync.json()["error"] == {
        "code": "storage_unavailable",
        "message": STORAGE_FAILED,
    }
    assert sync.headers["retry-after"] == "30" and sync.headers["x-remaining-credits"] == "20"
    run = await client.post("/v1/run", json={"model": "remove-background", "image": image}, headers=auth(key))
    final = (await poll(client, key, run.json()["id"]))[-1].json()
    assert final["status"] == "failed" and final["error"]["code"] == "storage_unavailable"
    assert (await client.get("/v1/credits", headers=auth(key))).json() == {"balance": 20, "held": 0, "available": 20}
