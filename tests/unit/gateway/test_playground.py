"""The playground's files at `/`: served from the package, outside the OpenAPI document, a demo key only when given."""

from __future__ import annotations

from gateway.app import create_app
from gateway.settings import Settings
from tests.fakes import InProcessPipelines
from tests.unit.gateway.conftest import running_client


async def test_the_page_and_its_files_are_served_outside_the_api_document(client) -> None:
    page = await client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.headers["cache-control"] == "no-store"
    assert "default-src 'self'" in page.headers["content-security-policy"], "no script or style from elsewhere"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"], "never framed (clickjacking)"
    assert page.headers["referrer-policy"] == "no-referrer"
    assert '<meta name="replate-demo-key" content="">' in page.text, "no key unless the embedded default gives one"
    script = await client.get("/playground/app.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert (await client.get("/playground/style.css")).headers["content-type"].startswith("text/css")
    missing = await client.get("/playground/nothing.js")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert not [path for path in paths if path == "/" or path.startswith("/playground")]


async def test_the_embedded_default_pre_fills_its_demo_key(settings: Settings) -> None:
    app = create_app(settings, pipelines=InProcessPipelines(), demo_key='rp_demo"<key>')
    async with running_client(app) as client:
        page = (await client.get("/")).text
    assert '<meta name="replate-demo-key" content="rp_demo&quot;&lt;key&gt;">' in page
