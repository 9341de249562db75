"""Configuration: one frozen, typed ``Settings`` built from the environment."""

from __future__ import annotations

import dataclasses
import os
import subprocess
from datetime import timedelta
from pathlib import Path

import limits
import pytest

import settings as settings_module
from settings import (
    DEFAULT_DATABASE_URL,
    DEFAULT_REDIS_URL,
    Settings,
    SettingsError,
    parse_duration,
)


def test_an_empty_environment_gives_the_documented_defaults() -> None:
    # Given no variables at all
    # When settings are built
    settings = Settings.from_env({})
    # Then the defaults of the issue apply
    assert settings.database_url == DEFAULT_DATABASE_URL
    assert settings.database_url.startswith("sqlite:///")
    assert settings.database_url.endswith("/var/lifecycle.db")
    assert settings.redis_url.startswith("redis://")
    assert settings.retention_period == timedelta(days=30)
    assert settings.removal_window == timedelta(days=30)
    assert settings.sweep_interval == timedelta(seconds=5)
    assert settings.jwt_secret is None
    assert settings.jwt_issuer is None
    assert settings.jwt_audience is None
    assert settings.jwks_url is None


def test_settings_are_frozen() -> None:
    # Given settings
    settings = Settings()
    # When a field is assigned, Then it is refused
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.retention_period = timedelta(days=1)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30d", timedelta(days=30)),
        ("12h", timedelta(hours=12)),
        ("5m", timedelta(minutes=5)),
        ("3s", timedelta(seconds=3)),
        (" 7d ", timedelta(days=7)),
    ],
)
def test_durations_are_a_whole_number_and_a_unit(text: str, expected: timedelta) -> None:
    # Given a duration written like 30d, When parsed, Then it is that long
    assert parse_duration(text) == expected


def test_every_value_is_read_from_its_variable() -> None:
    # Given every variable of the issue
    env = {
        "DATABASE_URL": "postgresql://db.example/lifecycle",
        "REDIS_URL": "redis://cache.example:6379/3",
        "RETENTION_PERIOD": "12h",
        "REMOVAL_WINDOW": "5m",
        "SWEEP_INTERVAL": "3s",
        "JWT_SECRET": "s3cret",
        "JWT_ISSUER": "https://issuer.example",
        "JWT_AUDIENCE": "lifecycle",
        "JWKS_URL": "https://issuer.example/jwks.json",
    }
    # When settings are built
    settings = Settings.from_env(env)
    # Then each one is used
    assert settings.database_url == "postgresql://db.example/lifecycle"
    assert settings.redis_url == "redis://cache.example:6379/3"
    assert settings.retention_period == timedelta(hours=12)
    assert settings.removal_window == timedelta(minutes=5)
    assert settings.sweep_interval == timedelta(seconds=3)
    assert settings.jwt_secret == "s3cret"
    assert settings.jwt_issuer == "https://issuer.example"
    assert settings.jwt_audience == "lifecycle"
    assert settings.jwks_url == "https://issuer.example/jwks.json"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("RETENTION_PERIOD", "thirty days"),
        ("RETENTION_PERIOD", "30"),
        ("REMOVAL_WINDOW", "0d"),
        ("REMOVAL_WINDOW", "-1d"),
        ("SWEEP_INTERVAL", "5ms"),
        ("SWEEP_INTERVAL", "1.5s"),
        ("DATABASE_URL", "var/lifecycle.db"),
        ("DATABASE_URL", "foo://bar"),
        ("DATABASE_URL", "mysql://db.example/lifecycle"),
        ("DATABASE_URL", "postgresql+psycopg2://db.example/lifecycle"),
        ("DATABASE_URL", "postgresql://db.example:port/lifecycle"),
        ("DATABASE_URL", "://db.example/lifecycle"),
        ("REDIS_URL", "http://127.0.0.1:6379"),
        ("RATE_LIMIT", "1 per hourz"),
        ("RATE_LIMIT", "lots"),
        ("RATE_LIMIT", "600 per minute; 10 per fortnight"),
        ("RATE_LIMIT", "0 per minute"),
        ("REMOVAL_BATCH_SIZE", "many"),
        ("DEV_SIGN_IN", "perhaps"),
        ("WEBHOOK_RETRY_FOR", "3 days"),
        ("WEBHOOK_DISABLE_AFTER", "0d"),
        ("WEBHOOK_ALLOW_PRIVATE_NETWORKS", "perhaps"),
    ],
)
def test_a_bad_value_fails_naming_the_variable(name: str, value: str) -> None:
    # Given one malformed variable
    # When settings are built, Then they fail with a message that names it and its value
    with pytest.raises(SettingsError, match=name) as raised:
        Settings.from_env({name: value})
    assert repr(value) in str(raised.value)


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:///var/lifecycle.db",
        "sqlite:////srv/lifecycle/lifecycle.db",
        "postgresql://db.example/lifecycle",
        "postgresql+psycopg://lifecycle:s3cret@db.example:5432/lifecycle",
        "postgres://db.example/lifecycle",
    ],
)
def test_sqlite_and_postgresql_database_urls_are_accepted(url: str) -> None:
    # Given a SQLite or PostgreSQL URL (postgres:// too: psycopg 3 serves it)
    # When settings are built, Then it is used as written
    assert Settings.from_env({"DATABASE_URL": url}).database_url == url


def test_a_refused_database_url_does_not_show_its_password() -> None:
    # Given a URL with a password and a driver the service does not run on
    url = "postgresql+psycopg2://lifecycle:s3cret@db.example/lifecycle"
    # When settings are built, Then the refusal names the variable, hides the password
    # and says what to write instead
    with pytest.raises(SettingsError, match="DATABASE_URL") as raised:
        Settings.from_env({"DATABASE_URL": url})
    message = str(raised.value)
    assert "s3cret" not in message
    assert "'postgresql+psycopg2://lifecycle:***@db.example/lifecycle'" in message
    assert "postgresql+psycopg://" in message


@pytest.mark.parametrize(
    "limit", ["100 per second", "10/minute", "100 per hour;1000 per day", "5 per 10 seconds"]
)
def test_rate_limits_in_flask_limiter_syntax_are_accepted(limit: str) -> None:
    assert Settings.from_env({"RATE_LIMIT": limit}).rate_limit == limit


def test_the_default_rate_limit_is_one_flask_limiter_reads() -> None:
    # Given no RATE_LIMIT (the default is not parsed at start)
    # Then the default is a limit the parser Flask-Limiter uses reads
    [limit] = limits.parse_many(Settings.from_env({}).rate_limit)
    assert (limit.amount, limit.get_expiry()) == (600, 60)


def test_the_readme_documents_every_variable_the_settings_read() -> None:
    # Given every variable name Settings.from_env asks the environment for
    import inspect
    import re

    import settings as settings_module

    source = inspect.getsource(settings_module.Settings.from_env)
    names = set(re.findall(r'\(\s*"([A-Z][A-Z0-9_]+)"', source))
    assert {"DATABASE_URL", "REDIS_URL", "RETENTION_PERIOD"} <= names
    # Then the README's configuration table names each of them
    readme = (settings_module.PROJECT_ROOT / "README.md").read_text()
    missing = sorted(name for name in names if f"`{name}`" not in readme)
    assert not missing, f"README.md does not document {missing}"


def test_without_redis_url_the_projects_own_running_redis_is_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given `make run` started its own redis-server (pid file and URL under var/redis)
    monkeypatch.setattr(settings_module, "EMBEDDED_REDIS_DIR", tmp_path)
    (tmp_path / "redis.pid").write_text(f"{os.getpid()}\n")
    (tmp_path / "url").write_text("redis://127.0.0.1:53111/0\n")
    # When a command in another terminal builds its settings without REDIS_URL
    # Then it talks to that server; REDIS_URL, when set, still wins
    assert Settings.from_env({}).redis_url == "redis://127.0.0.1:53111/0"
    given = Settings.from_env({"REDIS_URL": "redis://cache.example:6379/3"})
    assert given.redis_url == "redis://cache.example:6379/3"


def test_a_stopped_embedded_redis_is_not_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the pid file of a redis-server that is no longer running
    monkeypatch.setattr(settings_module, "EMBEDDED_REDIS_DIR", tmp_path)
    gone = subprocess.Popen(["true"])
    gone.wait()
    (tmp_path / "redis.pid").write_text(f"{gone.pid}\n")
    (tmp_path / "url").write_text("redis://127.0.0.1:53111/0\n")
    # When settings are built without REDIS_URL
    # Then the default applies, as when there is no pid file at all
    assert Settings.from_env({}).redis_url == DEFAULT_REDIS_URL
    (tmp_path / "redis.pid").unlink()
    assert Settings.from_env({}).redis_url == DEFAULT_REDIS_URL


def test_the_broker_is_redis_url_unless_broker_url_names_another():
    # Given only REDIS_URL, Then the broker is that Redis
    only_redis = Settings.from_env({"REDIS_URL": "redis://cache.example:6379/3"})
    assert only_redis.broker == "redis://cache.example:6379/3"
    assert not only_redis.broker_is_rabbitmq
    # Given BROKER_URL as RabbitMQ, Then the broker is RabbitMQ and Redis keeps its own uses
    both = Settings.from_env(
        {"REDIS_URL": "redis://cache.example:6379/3", "BROKER_URL": "amqps://u:p@mq.example/prod"}
    )
    assert both.broker == "amqps://u:p@mq.example/prod" and both.broker_is_rabbitmq
    assert both.redis_url == "redis://cache.example:6379/3"
    # And a Redis broker apart from the Redis of rate limits is a Redis broker
    apart = Settings.from_env({"BROKER_URL": "rediss://queue.example:6380/0"})
    assert apart.broker == "rediss://queue.example:6380/0" and not apart.broker_is_rabbitmq


@pytest.mark.parametrize("name", ["REDIS_URL", "BROKER_URL"])
def test_redis_sentinel_is_refused_at_start_with_a_message_naming_the_variable(name):
    url = "redis+sentinel://:secret@sentinel-1:26379/mymaster/0"
    with pytest.raises(SettingsError) as raised:
        Settings.from_env({name: url})
    message = str(raised.value)
    assert message.startswith(f"{name}=") and "Sentinel is not supported" in message
    assert "secret" not in message


@pytest.mark.parametrize(
    ("name", "url", "expected"),
    [
        ("BROKER_URL", "kafka://broker:9092", "redis://, rediss:// or unix://, amqp://"),
        ("REDIS_URL", "amqp://guest:guest@127.0.0.1:5672/", "redis://, rediss:// or unix://"),
    ],
)
def test_a_url_of_another_kind_is_refused_naming_what_is_accepted(name, url, expected):
    with pytest.raises(SettingsError, match=f"^{name}=.*must start with {expected}"):
        Settings.from_env({name: url})
