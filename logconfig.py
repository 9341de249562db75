"""Logging for every process (web, worker, scheduler, ``lifecycle`` commands): one set-up.

``configure()`` makes the root logger write one line per record to stderr:

- ``LOG_FORMAT=json`` (the default): a JSON object with ``timestamp`` (UTC, ISO 8601),
  ``level``, ``logger``, ``message``, then the fields of the work in hand —
  ``request_id``, ``membership_id``, ``organization_id`` where known — and any
  ``extra=`` fields; ``exc_info`` when there is a traceback. Written by
  python-json-logger.
- ``LOG_FORMAT=text``: ``HH:MM:SS level logger: message key=value …`` for reading in a
  terminal (``make run``).

``log_context(request_id=..., membership_id=...)`` puts fields on every record logged
inside it (a ``ContextVar``, so each thread has its own). The web process opens one per
request (``web.observability``), the worker one per message, the scheduler one per tick,
so one request id follows a leave from the click to the purge across processes.
``gunicorn_logconfig()`` is the same set-up as a ``logging.config.dictConfig`` for
gunicorn's own loggers (``web/gunicorn_conf.py``).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import IO, Any

from pythonjsonlogger.json import JsonFormatter as _LibraryJsonFormatter

FORMATS = ("json", "text")
_context: ContextVar[dict[str, Any] | None] = ContextVar("lifecycle_log_context", default=None)

# Attributes every LogRecord has; anything else on a record came from ``extra=`` or the context.
_STANDARD = set(vars(logging.LogRecord("x", logging.INFO, "x", 0, "x", None, None))) | {
    "message",
    "asctime",
    "taskName",
}


def current_context() -> dict[str, Any]:
    return dict(_context.get() or {})


@contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Add ``fields`` (those not ``None``) to every record logged inside the block."""
    merged = {**current_context(), **{k: v for k, v in fields.items() if v is not None}}
    token = _context.set(merged)
    try:
        yield
    finally:
        _context.reset(token)


class ContextFilter(logging.Filter):
    """Copies the current ``log_context`` fields onto each record."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in current_context().items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


class JsonFormatter(_LibraryJsonFormatter):
    """``{"timestamp", "level", "logger", "message", ...context and extra fields}``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(
            "{levelname}{name}{message}",
            style="{",
            rename_fields={"levelname": "level", "name": "logger"},
            json_default=str,
        )

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        # "timestamp" first, as a reader scans the lines; the level in lower case
        log_data["timestamp"] = datetime.fromtimestamp(record.created, UTC).isoformat(
            timespec="milliseconds"
        )
        super().add_fields(log_data, record, message_dict)
        log_data["level"] = record.levelname.lower()


class TextFormatter(logging.Formatter):
    """``09:00:00 info web.access: GET /v1/… 202 request_id=… membership_id=…``."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created, UTC).strftime("%H:%M:%S")
        fields = " ".join(
            f"{key}={value}"
            for key, value in vars(record).items()
            if key not in _STANDARD and not key.startswith("_")
        )
        line = f"{stamp} {record.levelname.lower():<7} {record.name}: {record.getMessage()}"
        if fields:
            line = f"{line}  {fields}"
        if record.exc_info:
            line = f"{line}\n{self.formatException(record.exc_info)}"
        return line


def log_format(environ: dict[str, str] | os._Environ[str] | None = None) -> str:
    """``LOG_FORMAT`` (``json`` or ``text``; default ``json``); raises ``ValueError``."""
    value = (environ if environ is not None else os.environ).get("LOG_FORMAT", "").strip()
    value = value.lower() or "json"
    if value not in FORMATS:
        raise ValueError(f"LOG_FORMAT must be one of {', '.join(FORMATS)}, not {value!r}")
    return value


def formatter(fmt: str | None = None) -> logging.Formatter:
    return TextFormatter() if (fmt or log_format()) == "text" else JsonFormatter()


def configure(
    level: int | str | None = logging.INFO, stream: IO[str] | None = None, fmt: str | None = None
) -> None:
    """Make every handler of the root logger write ``LOG_FORMAT`` lines with the context
    fields; add a stderr handler when there is none. ``level=None`` keeps the level the
    process set (the dramatiq command's ``-v``). Safe to call again."""
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(logging.StreamHandler(stream or sys.stderr))
    if level is not None:
        root.setLevel(level)
    chosen = formatter(fmt)
    for handler in root.handlers:
        handler.setFormatter(chosen)
        if not any(isinstance(f, ContextFilter) for f in handler.filters):
            handler.addFilter(ContextFilter())


def gunicorn_logconfig(fmt: str | None = None) -> dict[str, Any]:
    """gunicorn's ``logconfig_dict``: its loggers and the app's all write to stderr in
    ``LOG_FORMAT``. gunicorn's own access log is off: the app writes one line per request
    (``web.access``), which knows the route and the request id."""
    chosen = "text" if (fmt or log_format()) == "text" else "json"
    handler = {
        "class": "logging.StreamHandler",
        "formatter": chosen,
        "filters": ["context"],
        "stream": "ext://sys.stderr",
    }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"context": {"()": ContextFilter}},
        "formatters": {"json": {"()": JsonFormatter}, "text": {"()": TextFormatter}},
        "handlers": {"stderr": handler, "error_console": handler, "console": handler},
        "root": {"level": "INFO", "handlers": ["stderr"]},
        "loggers": {
            "gunicorn.error": {"level": "INFO", "handlers": ["stderr"], "propagate": False},
            "gunicorn.access": {"level": "INFO", "handlers": [], "propagate": False},
        },
    }
