"""Structured logs: one JSON object per line, carrying the request id of the request being served."""

from __future__ import annotations

import json
import logging
import re
import uuid
from contextvars import ContextVar
from datetime import UTC, datetime

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
_CLIENT_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")
_STANDARD_FIELDS = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


def start_request(client_request_id: str | None) -> str:
    """The request id of the request now being served: the client's (x-request-id) when it is well formed, else a
    new one; later log lines of this task carry it."""
    request_id = client_request_id if client_request_id and _CLIENT_REQUEST_ID.match(client_request_id) else None
    request_id = request_id or uuid.uuid4().hex
    request_id_var.set(request_id)
    return request_id


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = request_id_var.get()
        if request_id:
            entry["request_id"] = request_id
        entry.update({key: value for key, value in record.__dict__.items() if key not in _STANDARD_FIELDS})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


LIBRARY_LEVEL_FLOOR = logging.INFO
"""Libraries never log below this, whatever the level: at DEBUG they write what must not reach a log (aiosqlite
prints every statement with its parameters: API key digests, stored responses holding signed output URLs, uploaded
images)."""


def configure_logging(level: str = "info", fmt: str = "json") -> None:
    """One handler on the root logger; `level` applies to replate's own loggers, and to libraries' down to
    LIBRARY_LEVEL_FLOOR only."""
    handler = logging.StreamHandler()
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    ours = logging.getLevelNamesMapping()[level.upper()]
    root.setLevel(max(ours, LIBRARY_LEVEL_FLOOR))
    logging.getLogger("replate").setLevel(ours)
