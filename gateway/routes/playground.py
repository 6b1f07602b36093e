"""The web playground at `/`: static files of the package (no build step, no CDN), outside the OpenAPI document.

The page calls the public API with the key a person types in. Only `replate serve`'s embedded default hands it the
demo key it has just created (`demo_key`); the gateway never knows any other key in plain text.
"""

from __future__ import annotations

import html
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
DEMO_KEY_PLACEHOLDER = "__REPLATE_DEMO_KEY__"
PAGE_HEADERS = {
    # The page may hold a key: never cached, never framed, scripts and styles from this server only.
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'self'; img-src * data: blob:; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
}


def install_playground(app: FastAPI, demo_key: str | None = None) -> None:
    page = (STATIC_DIR / "index.html").read_text().replace(DEMO_KEY_PLACEHOLDER, html.escape(demo_key or ""))

    @app.get("/", include_in_schema=False)
    async def playground() -> HTMLResponse:
        return HTMLResponse(page, headers=PAGE_HEADERS)

    app.mount("/playground", StaticFiles(directory=STATIC_DIR), name="playground")
