"""A local mail server for development: accepts every mail and prints it to its log.

``make run`` starts it as the Procfile's ``mail`` process and points ``SMTP_URL`` at it,
so the mails members get (removed, restored, data removal started or finished, a
removal request answered) show up in the terminal. It keeps nothing and relays nothing.

    python -m scripts.mail_sink [--host 127.0.0.1] [--port 8025]
"""

from __future__ import annotations

import argparse
import asyncio
import email
import email.policy
import os
import sys
from typing import Any

from aiosmtpd.controller import Controller

DEFAULT_PORT = 8025


def describe(envelope: Any) -> str:
    """The mail as a block of text: envelope, subject and the plain-text body."""
    raw = envelope.content if isinstance(envelope.content, bytes) else envelope.content.encode()
    message = email.message_from_bytes(raw, policy=email.policy.default)
    body = message.get_body(preferencelist=("plain",))  # type: ignore[attr-defined]
    text = body.get_content() if body is not None else ""
    lines = [
        "─" * 72,
        f"mail from {envelope.mail_from} to {', '.join(envelope.rcpt_tos)}",
        f"Subject: {message['Subject']}",
        "",
        text.rstrip(),
        "─" * 72,
    ]
    return "\n".join(lines)


class PrintingHandler:
    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        print(describe(envelope), flush=True)
        return "250 OK: printed, not delivered"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument(
        "--port", type=int, default=int(os.environ.get("MAIL_SINK_PORT", DEFAULT_PORT))
    )
    args = parser.parse_args(argv)
    controller = Controller(PrintingHandler(), hostname=args.host, port=args.port)
    controller.start()
    print(f"mail sink: printing every mail sent to smtp://{args.host}:{args.port}", flush=True)
    try:
        asyncio.run(_forever())
    except KeyboardInterrupt:
        pass
    finally:
        controller.stop()
    return 0


async def _forever() -> None:
    await asyncio.Event().wait()


if __name__ == "__main__":
    sys.exit(main())
