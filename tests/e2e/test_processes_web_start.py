"""The web process as the Procfile starts it (gunicorn, two workers): what it says once.

A weak ``JWT_SECRET`` (``make run``'s development one) concerns the whole server, so
it is reported once per start, by gunicorn's master, not once by every worker.
"""

from __future__ import annotations

import os
import time

import pytest

from bench.http import answers, web_argv
from tests.support.harness import Process, free_port, wait_for
from web.auth import WEAK_SECRET_REPORTED

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

WARNING = "too weak for production"


def test_a_weak_jwt_secret_is_reported_once_per_start_not_once_per_worker(tmp_path):
    # Given the Procfile's web line (two workers) with make run's 20-byte secret
    port = free_port()
    argv = web_argv(port)
    assert "--workers" in argv and argv[argv.index("--workers") + 1] == "2"
    env = {
        key: value
        for key, value in os.environ.items()
        if key != WEAK_SECRET_REPORTED and not key.startswith("PROMETHEUS_")
    }
    env |= {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'web.db'}",
        "REDIS_URL": "redis://127.0.0.1:1/0",
        "JWT_SECRET": "dev-secret-change-me",
        "SECRET_KEY": "a-session-key-of-its-own-for-this-test",
        "LOG_FORMAT": "text",
    }
    web = Process("web", argv, env, tmp_path / "web.log")
    try:
        # When it has started both workers and answers
        wait_for(lambda: answers(f"http://127.0.0.1:{port}/healthz"), 60, "the web", web.tail)
        wait_for(
            lambda: web.log.read_text().count("Booting worker") >= 2, 30, "two workers", web.tail
        )
        # (each worker builds its app, and would report, a moment after it boots)
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline and web.log.read_text().count(WARNING) < 2:
            time.sleep(0.2)
    finally:
        web.stop()
    # Then the weak secret was reported exactly once
    assert web.log.read_text().count(WARNING) == 1, web.tail(60)
