"""The harness of the process tests (no tests here): a private redis-server, a private
database, the broker (that Redis, or a RabbitMQ virtual host of the test run's own when
``TEST_AMQP_URL`` is set), the real ``dramatiq`` worker and ``lifecycle scheduler``
processes, and a small directory of guests to act on.

Every process runs in a session of its own, so a test can ``kill -9`` a whole worker
(its parent and its worker processes) like a machine dying; every wait is bounded.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis
from sqlalchemy import select

from composition import policy_from
from memberships import provisioning
from memberships.clock import utc_now
from memberships.principal import SYSTEM
from settings import Settings
from store.database import make_engine, make_session_factory
from store.models import AuditEvent, Membership
from store.unit_of_work import UnitOfWork
from tests.support.harness import (
    BIN,
    REPO,
    Process,
    drop_rabbitmq_queues,
    free_port,
    redis_server,
    redis_server_path,
    scheduler_argv,
    scratch_database,
    wait_for,
    worker_argv,
)
from workers.broker import build_broker
from workers.dispatch import BrokerDispatcher
from workers.messages import QUEUES

__all__ = ["Process", "free_port", "redis_server", "redis_server_path", "wait_for"]

TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL", "").strip()
TEST_AMQP_URL = os.environ.get("TEST_AMQP_URL", "").strip()
NEEDS_AMQP = "RabbitMQ tests need TEST_AMQP_URL (.ci/run sets it; e.g. amqp://guest:guest@127.0.0.1:5672/%2F)"


STACKS = [
    pytest.param(("sqlite", "redis"), id="sqlite-redis"),
    pytest.param(
        ("postgresql", "redis"),
        id="postgresql-redis",
        marks=pytest.mark.skipif(not TEST_DATABASE_URL, reason="needs TEST_DATABASE_URL"),
    ),
    pytest.param(
        ("sqlite", "rabbitmq"),
        id="sqlite-rabbitmq",
        marks=pytest.mark.skipif(not TEST_AMQP_URL, reason=NEEDS_AMQP),
    ),
]
"""(database, broker) of the process tests: every test on Redis with each database, and on
RabbitMQ (the broker does not depend on the database)."""


def broker_url_for(request: pytest.FixtureRequest, kind: str) -> str | None:
    """``None`` for Redis (the broker is ``REDIS_URL``); for RabbitMQ the test run's own
    virtual host (the ``amqp_url`` fixture), without an earlier module's queues."""
    if kind == "redis":
        return None
    url: str = request.getfixturevalue("amqp_url")
    drop_rabbitmq_queues(url, QUEUES)
    return url


@contextmanager
def private_database(kind: str, directory: Path) -> Iterator[str]:
    """A migrated database for one module: a SQLite file, or a PostgreSQL database of its
    own on ``TEST_DATABASE_URL`` (dropped afterwards)."""
    with scratch_database(
        "sqlite" if kind == "sqlite" else TEST_DATABASE_URL, directory, "lifecycle_e2e"
    ) as url:
        yield url


@dataclass
class Stack:
    """The environment the processes share, the processes started, and what a test uses
    to act like the web edge (use cases whose messages go to the same Redis)."""

    database_url: str
    redis_url: str
    directory: Path
    env_overrides: dict[str, str] = field(default_factory=dict)
    # None: the broker is the Redis at redis_url; else a RabbitMQ URL (BROKER_URL).
    broker_url: str | None = None
    processes: list[Process] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.env = {
            **os.environ,
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis_url,
            "RETENTION_PERIOD": "2s",
            "SWEEP_INTERVAL": "1s",
            "REDRIVE_AFTER": "3s",
            "PYTHONUNBUFFERED": "1",
            **({"BROKER_URL": self.broker_url} if self.broker_url else {}),
            **self.env_overrides,
        }
        if not self.broker_url:
            self.env.pop("BROKER_URL", None)
        self.env.pop("TEST_DATABASE_URL", None)
        self.settings = Settings.from_env(self.env)
        self.engine = make_engine(self.database_url)
        self.session_factory = make_session_factory(self.engine)
        self.redis = redis.Redis.from_url(self.redis_url)
        self.broker = build_broker(self.settings)
        self.dispatcher = BrokerDispatcher(self.broker)

    def start(self, name: str, argv: list[str], **env: str) -> Process:
        count = sum(p.name == name for p in self.processes)
        process = Process(
            name,
            argv,
            {**self.env, **env},
            self.directory / f"{name}-{count}.log",
        )
        self.processes.append(process)
        return process

    @property
    def broker_kind(self) -> str:
        return "rabbitmq" if self.settings.broker_is_rabbitmq else "redis"

    def lose_messages(self) -> None:
        """The broker loses every message it holds, in flight too: Redis is flushed;
        RabbitMQ's queues are deleted."""
        if self.broker_url:
            drop_rabbitmq_queues(self.broker_url, QUEUES)
        else:
            self.redis.flushall()

    def start_worker(self, **env: str) -> Process:
        # Each worker's Prometheus exposition on a port and in a folder of its own.
        count = sum(p.name == "worker" for p in self.processes)
        metrics_dir = self.directory / f"worker-{count}-metrics"
        metrics_dir.mkdir(exist_ok=True)
        port = free_port()
        process = self.start(
            "worker",
            worker_argv(),
            dramatiq_prom_host="127.0.0.1",
            dramatiq_prom_port=str(port),
            dramatiq_prom_db=str(metrics_dir),
            **env,
        )
        process.metrics_url = f"http://127.0.0.1:{port}/metrics"  # type: ignore[attr-defined]
        return process

    def start_scheduler(self, **env: str) -> Process:
        return self.start("scheduler", scheduler_argv(), **env)

    def logs(self) -> str:
        return "\n".join(p.tail() for p in self.processes)

    def uow(self, request_id: str | None = None) -> UnitOfWork:
        return UnitOfWork(
            self.session_factory, self.dispatcher, policy_from(self.settings), request_id
        )

    def lifecycle(self, *args: str) -> str:
        """Run a ``lifecycle`` command as an operator would, and return its output."""
        result = subprocess.run(
            [str(BIN / "lifecycle"), *args],
            env=self.env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    def state(self, membership_id: str) -> str:
        with self.session_factory() as session:
            return session.get(Membership, membership_id).state  # type: ignore[union-attr]

    def wait_for_state(self, membership_id: str, state: str, timeout: float = 30) -> None:
        wait_for(
            lambda: self.state(membership_id) == state,
            timeout,
            f"{membership_id} to be {state} (is {self.state(membership_id)})",
            self.logs,
        )

    def transitions(self, membership_id: str) -> list[str]:
        """The membership's allowed lifecycle decisions, in order."""
        with self.session_factory() as session:
            return list(
                session.scalars(
                    select(AuditEvent.action)
                    .where(
                        AuditEvent.membership_id == membership_id,
                        AuditEvent.outcome == "allowed",
                        AuditEvent.to_state.is_not(None),
                    )
                    .order_by(AuditEvent.id)
                )
            )

    def denied(self, membership_id: str) -> list[str | None]:
        """The reasons of the membership's denied decisions (a lost race shows here)."""
        with self.session_factory() as session:
            return list(
                session.scalars(
                    select(AuditEvent.reason).where(
                        AuditEvent.membership_id == membership_id, AuditEvent.outcome == "denied"
                    )
                )
            )

    def close(self) -> None:
        for process in reversed(self.processes):
            process.stop()
        self.broker.close()
        self.redis.close()
        self.engine.dispose()


@dataclass
class Directory:
    """An organization that lets guests leave, its admin, and guests made on demand."""

    stack: Stack
    org_id: str = ""
    admin_id: str = ""

    def __post_init__(self) -> None:
        suffix = uuid.uuid4().hex[:8]
        with self.stack.uow() as uow:
            org = provisioning.create_organization(
                uow,
                utc_now,
                SYSTEM,
                f"org-{suffix}.example",
                "Org",
                f"privacy@org-{suffix}.example",
                f"https://org-{suffix}.example/privacy",
            )
        self.org_id = org.id
        with self.stack.uow() as uow:
            self.admin_id = provisioning.create_user(
                uow, utc_now, SYSTEM, f"admin-{suffix}@mail.example", "Admin", org.id
            ).id
        with self.stack.uow() as uow:
            provisioning.grant_role(
                uow, utc_now, SYSTEM, self.admin_id, "global-administrator", org.id
            )

    def guest(self, kind: str, grants: int = 0, data_rows: int = 0) -> tuple[str, str]:
        """A new user who is a guest of ``kind`` with grants and data; (user id, membership)."""
        suffix = uuid.uuid4().hex[:8]
        with self.stack.uow() as uow:
            user = provisioning.create_user(
                uow, utc_now, SYSTEM, f"guest-{suffix}@mail.example", f"Guest {suffix}", None
            )
        with self.stack.uow() as uow:
            membership = provisioning.add_guest(uow, utc_now, SYSTEM, self.org_id, user.id, kind)
        for i in range(grants):
            with self.stack.uow() as uow:
                provisioning.add_grant(uow, utc_now, SYSTEM, self.org_id, user.id, "group", f"G{i}")
        if data_rows:
            with self.stack.uow() as uow:
                provisioning.add_member_data(uow, utc_now, SYSTEM, self.org_id, user.id, data_rows)
        return user.id, membership.id
