"""``logconfig``: the one log set-up of every process."""

from __future__ import annotations

import io
import json
import logging
import logging.config

import pytest

import logconfig


def _record(message: str = "hello %s", *args: object, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("workers.tasks", logging.WARNING, __file__, 1, message, args, None)
    for key, value in extra.items():
        setattr(record, key, value)
    return record


def test_a_json_line_has_the_documented_fields_and_the_context():
    formatter = logconfig.JsonFormatter()
    with logconfig.log_context(request_id="r-1", membership_id="m-1", organization_id=None):
        record = _record("hello %s", "world", state="soft-deleted")
        logconfig.ContextFilter().filter(record)
    entry = json.loads(formatter.format(record))
    assert list(entry)[:4] == ["timestamp", "level", "logger", "message"]
    assert entry["level"] == "warning" and entry["logger"] == "workers.tasks"
    assert entry["message"] == "hello world"
    assert entry["timestamp"].endswith("+00:00") and "T" in entry["timestamp"]
    assert entry["request_id"] == "r-1" and entry["membership_id"] == "m-1"
    assert "organization_id" not in entry  # None is "not known", not a field
    assert entry["state"] == "soft-deleted"


def test_the_text_format_is_one_readable_line_with_the_fields():
    line = logconfig.TextFormatter().format(_record("hello", request_id="r-1"))
    assert line.endswith("warning workers.tasks: hello  request_id=r-1")


@pytest.mark.parametrize(("value", "expected"), [("", "json"), ("JSON", "json"), ("text", "text")])
def test_log_format_is_read_from_the_environment(value, expected):
    assert logconfig.log_format({"LOG_FORMAT": value}) == expected


def test_an_unknown_log_format_is_refused_by_name():
    with pytest.raises(ValueError, match="LOG_FORMAT must be one of json, text"):
        logconfig.log_format({"LOG_FORMAT": "xml"})


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_configure_writes_every_handler_in_the_chosen_format(fmt):
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    stream = io.StringIO()
    root.handlers[:] = [logging.StreamHandler(stream)]
    try:
        logconfig.configure(fmt=fmt)
        logging.getLogger("x").info("one line")
    finally:
        root.handlers[:], root.level = saved
    line = stream.getvalue().strip()
    if fmt == "json":
        assert json.loads(line)["message"] == "one line"
    else:
        assert line.endswith("info    x: one line")


def test_gunicorn_gets_the_same_set_up_as_a_dict_config():
    config = logconfig.gunicorn_logconfig("json")
    assert config["handlers"]["stderr"]["formatter"] == "json"
    assert config["loggers"]["gunicorn.access"]["handlers"] == []  # the app logs access
    assert logconfig.gunicorn_logconfig("text")["handlers"]["stderr"]["formatter"] == "text"
