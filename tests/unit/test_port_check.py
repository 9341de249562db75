"""``make run``'s first and last words: a taken port is named before anything starts, and
once the web answers one line says what to open, whom to sign in as and how to get a
token (``scripts/port_check.py``)."""

from __future__ import annotations

import importlib.util
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _port_check() -> ModuleType:
    spec = importlib.util.spec_from_file_location("port_check", ROOT / "scripts" / "port_check.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@contextmanager
def _listening() -> Iterator[int]:
    """A port something listens on (and never answers)."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield int(taken.getsockname()[1])


class _Healthy(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (the standard library's name)
        self.send_response(200 if self.path == "/healthz" else 404)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@contextmanager
def _web() -> Iterator[int]:
    """A web process that answers ``/healthz``, as the app does once a worker has built it."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Healthy)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_a_taken_web_port_is_one_line_naming_make_run_port_8080(monkeypatch, capsys):
    # Given something on port 8000 and nothing on 8080
    check = _port_check()
    monkeypatch.setattr(check, "in_use", lambda port: port == 8000)
    monkeypatch.setattr("sys.argv", ["port_check.py", "8000"])
    # When make run checks the port
    code = check.main()
    # Then it stops with the one line the newcomer needs
    out, err = capsys.readouterr()
    assert code == 1
    assert (out, err) == ("", "port 8000 is in use; run `make run PORT=8080`\n")


def test_a_free_port_passes_silently(capsys):
    check = _port_check()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert not check.in_use(port)


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_run_on_a_taken_port_stops_before_starting_anything():
    # Given the web port taken
    with _listening() as port, _listening() as other:
        mail_port = other + 1 if other < 65000 else other - 1
        # When make run starts (the installed .venv is taken as up to date, and its programs
        # are this interpreter's, wherever the checkout runs from)
        result = subprocess.run(
            [
                "make",
                "-o",
                ".venv/.installed",
                "run",
                f"BIN={Path(sys.executable).parent}",
                f"PORT={port}",
                f"MAIL_SINK_PORT={mail_port}",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
    # Then it stops at once, saying which port and what to run instead, having started
    # nothing (no Redis, no database, no process)
    assert result.returncode != 0
    assert f"port {port} is in use; run `make run PORT=" in result.stderr
    output = result.stdout + result.stderr
    for started in ("ensure_redis", "database at revision", "demo:", "started (pid", "gunicorn"):
        assert started not in output, output


def test_the_closing_line_waits_for_the_web_to_answer(capsys):
    # Given a port that accepts connections but answers no HTTP (gunicorn's master
    # listens before any worker has built the app)
    check = _port_check()
    with _listening() as port:
        check.announce(port, timeout=1.5)
    # Then nothing is announced yet
    assert capsys.readouterr().out == ""


def test_the_closing_line_says_what_to_open_whom_to_sign_in_as_and_the_token_command(
    monkeypatch, capsys
):
    # Given make run's development secret, and the web answering
    monkeypatch.setenv("JWT_SECRET", "dev-secret-change-me")
    check = _port_check()
    with _web() as port:
        check.announce(port, timeout=10)
    # Then one line says it all
    lines = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert len(lines) == 1
    [line] = lines
    assert f"open http://127.0.0.1:{port} " in line
    for user in ("alice@woodgrove.example", "admin@contoso.example", "ops@woodgrove.example"):
        assert user in line
    assert (
        "JWT_SECRET=dev-secret-change-me .venv/bin/lifecycle token --user alice@woodgrove.example"
        in line
    )
