"""Structured logs: one JSON object per line, carrying the request id.

No Flask here: the web layer sets ``request_id`` (a context variable, so
each gevent greenlet or thread has its own) for the time of a request, and
every record logged meanwhile carries it, wherever in the code it was
logged. ``LIVESALE_LOG_FORMAT=text`` gives plain lines for a terminal.
"""

from __future__ import annotations

import contextvars
import logging
import sys
import time
from typing import Any

from . import json_codec

#: The id of the request being handled ("" outside a request).
request_id: contextvars.ContextVar[str] = contextvars.ContextVar("livesale_request_id", default="")

#: Attributes every LogRecord has; anything else was passed with ``extra=`` and is logged as a field.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "request_id"}

_HANDLER_MARK = "_livesale_handler"


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        return True


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "logger", "msg", "request_id", ...extra fields, "exc"}``."""

    def __init__(self) -> None:
        super().__init__()
        self._second = -1
        self._stamp = ""

    def _ts(self, created: float) -> str:
        # One access line per request: the date part is formatted once per second, not per line.
        second = int(created)
        if second != self._second:
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = second
        return f"{self._stamp}.{int((created - second) * 1000):03d}Z"

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": self._ts(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        rid = getattr(record, "request_id", "")
        if rid:
            out["request_id"] = rid
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):  # passed with ``extra=``
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json_codec.dumps(out, default=str).decode()


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is when a record is emitted (test runners swap it)."""

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")


def configure(*, level: str = "INFO", fmt: str = "json") -> None:
    """Send the ``livesale`` loggers to stderr in ``fmt``; once per process
    (later calls change the level and format of the same handler)."""
    logger = logging.getLogger("livesale")
    handler = next((h for h in logger.handlers if getattr(h, _HANDLER_MARK, False)), None)
    if handler is None:
        handler = _StderrHandler()
        setattr(handler, _HANDLER_MARK, True)
        handler.addFilter(RequestIdFilter())
        logger.addHandler(handler)
        logger.propagate = False
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    logger.setLevel(level.upper())
