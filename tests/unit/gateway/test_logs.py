"""Logging setup: REPLATE_LOG_LEVEL=debug reaches replate's loggers, never libraries' debug output."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from gateway.logs import configure_logging


@pytest.fixture
def restored_logging() -> Iterator[None]:
    root, ours = logging.getLogger(), logging.getLogger("replate")
    handlers, root_level, our_level = root.handlers[:], root.level, ours.level
    yield
    root.handlers[:] = handlers
    root.setLevel(root_level)
    ours.setLevel(our_level)


def test_debug_is_for_replate_only_libraries_stay_at_info(restored_logging: None) -> None:
    configure_logging("debug", "json")
    stream = io.StringIO()
    logging.getLogger().handlers[0].setStream(stream)  # type: ignore[attr-defined]
    logging.getLogger("replate.gateway").debug("ours")
    logging.getLogger("aiosqlite").debug("executing SELECT ... WHERE key_hash = ?, ('digest',)")
    logging.getLogger("aiosqlite").info("a library's info line")
    assert [json.loads(line)["message"] for line in stream.getvalue().splitlines()] == ["ours", "a library's info line"]
