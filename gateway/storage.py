"""Where outputs live: a local folder, named by unguessable tokens so that a URL works without the API key."""

from __future__ import annotations

import asyncio
import re
import secrets
from pathlib import Path

from gateway.errors import NotFound

_NAME = re.compile(r"^[A-Za-z0-9_-]{32,64}\.(png|jpeg|webp)$")


class LocalStorage:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)

    async def save(self, data: bytes, fmt: str) -> str:
        """Store one output; returns its public name (token.ext)."""
        name = f"{secrets.token_urlsafe(32)}.{fmt}"
        await asyncio.to_thread(self._write, self.root / name, data)
        return name

    def path_of(self, name: str) -> Path:
        path = self.root / name
        if not _NAME.match(name) or not path.is_file():
            raise NotFound("no such output; outputs expire, and their URLs must be used exactly as given")
        return path

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        partial = path.with_suffix(".partial")
        partial.write_bytes(data)
        partial.rename(path)
