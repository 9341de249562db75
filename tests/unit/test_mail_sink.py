"""``make run``'s mail: the local sink prints every mail it receives, and a taken sink port
is named before anything starts."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

from memberships.notices import OutgoingMail
from workers.mail import SmtpSender

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_sink_prints_each_mail_it_receives():
    port = _free_port()
    sink = subprocess.Popen(
        [sys.executable, str(ROOT / "scripts" / "mail_sink.py"), "--port", str(port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert sink.stdout is not None
        assert "mail sink: printing every mail" in sink.stdout.readline()
        mail = OutgoingMail(
            "bob@personal.example", "Contoso removed you", "Contoso removed…\n", "<p>x</p>"
        )
        assert SmtpSender(f"smtp://127.0.0.1:{port}", "Lifecycle <no-reply@localhost>").send_all(
            [mail]
        ) == [None]
        deadline, seen = time.monotonic() + 10, ""
        while "Contoso removed…" not in seen and time.monotonic() < deadline:
            seen += sink.stdout.readline()
        assert "mail from no-reply@localhost to bob@personal.example" in seen
        assert "Subject: Contoso removed you" in seen and "Contoso removed…" in seen
    finally:
        sink.terminate()
        sink.wait(timeout=10)
        if sink.stdout is not None:
            sink.stdout.close()


def test_a_taken_sink_port_is_named_with_a_free_one():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [
                sys.executable,
                str(ROOT / "scripts" / "port_check.py"),
                str(port),
                "--name",
                "MAIL_SINK_PORT",
            ],
            capture_output=True,
            text=True,
        )
    assert result.returncode == 1
    assert f"port {port} is in use; run `make run MAIL_SINK_PORT=" in result.stderr
