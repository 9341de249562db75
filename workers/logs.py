"""The workers' logging: the one set-up of every process (``logconfig``), under the
names the worker code has always used."""

from __future__ import annotations

from logconfig import ContextFilter, JsonFormatter, configure, current_context, log_context

__all__ = ["ContextFilter", "JsonFormatter", "configure", "current_context", "log_context"]
