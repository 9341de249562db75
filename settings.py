"""The one reader of the environment: a frozen, typed ``Settings``.

Tests build ``Settings`` directly; processes call ``Settings.from_env()`` once
at their composition point. A bad value fails at start with a message that
names the variable.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path

from store.policy import Policy

# The rules' durations and batch sizes have one default each, the policy's.
_POLICY = Policy()

_DURATION = re.compile(r"^\s*(\d+)\s*([dhms])\s*$")
_UNITS = {"d": "days", "h": "hours", "m": "minutes", "s": "seconds"}

# The checkout, when running from one (README, tests); never a place to write data to.
PROJECT_ROOT = Path(__file__).resolve().parent
# The instance's data lives under ./var of the working directory — the checkout for
# `make run`, wherever the service is started otherwise — never inside the installed
# package. A relative SQLite path is resolved against the working directory.
VAR_DIR = Path("var")
DEFAULT_DATABASE_URL = f"sqlite:///{VAR_DIR / 'lifecycle.db'}"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
# Where scripts/ensure_redis.py keeps the redis-server it starts for `make run` and
# `make test` when REDIS_URL is unset: its pid file and its URL.
EMBEDDED_REDIS_DIR = VAR_DIR / "redis"


def embedded_redis_url(directory: Path | None = None) -> str | None:
    """The URL of the project's own redis-server while it runs, else ``None``.

    So that a command typed in a second terminal (``lifecycle queues``) finds the Redis
    ``make run`` started, without the user copying its port.
    """
    directory = EMBEDDED_REDIS_DIR if directory is None else directory
    if running_pid(directory / "redis.pid") is None:
        return None
    try:
        url = (directory / "url").read_text().strip()
    except OSError:
        return None
    return url or None


def running_pid(pidfile: Path) -> int | None:
    """The pid in ``pidfile`` if that process is alive, else ``None``."""
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # alive, owned by another user
    return pid


class SettingsError(ValueError):
    """A configuration value is missing or malformed; the message names the variable."""


# The database URLs the service runs on: SQLite (the standard library's driver) and
# PostgreSQL (psycopg 3; ``postgresql://`` and ``postgres://`` are served by it too, see
# ``store.database.make_engine``).
DATABASE_DRIVERS = ("sqlite", "sqlite+pysqlite", "postgresql", "postgres", "postgresql+psycopg")
_DATABASE_URL_HINT = "write sqlite:///path/to/file.db or postgresql+psycopg://user@host:5432/name"
_URL_PASSWORD = re.compile(r"(//[^/:@]*:)[^/@]*@")
_PLAIN_SQLITE = re.compile(r"sqlite(\+pysqlite)?:///[^?#]*")


def without_password(url: str) -> str:
    """``url`` with any password replaced by ``***``, for messages."""
    return _URL_PASSWORD.sub(r"\1***@", url)


def check_database_url(url: str, name: str = "DATABASE_URL") -> str:
    """``url`` if it is a SQLite or PostgreSQL SQLAlchemy URL; else ``SettingsError``."""
    if _PLAIN_SQLITE.fullmatch(url):
        # A file path (the default among them) needs no parser: every CLI call reads the
        # settings, and loading SQLAlchemy only to look at this would slow each one down.
        return url
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    shown = without_password(url)
    try:
        driver = make_url(url).drivername if "://" in url else None
    except ArgumentError as error:
        raise SettingsError(
            f"{name}={shown!r} is not a database URL ({error}): {_DATABASE_URL_HINT}"
        ) from None
    except ValueError:  # the only number in a URL
        raise SettingsError(
            f"{name}={shown!r} is not a database URL (its port is not a number): "
            f"{_DATABASE_URL_HINT}"
        ) from None
    if driver is None:
        raise SettingsError(f"{name}={shown!r} is not a database URL: {_DATABASE_URL_HINT}")
    if driver not in DATABASE_DRIVERS:
        raise SettingsError(
            f"{name}={shown!r}: {driver!r} is not a database this service runs on "
            f"(SQLite or PostgreSQL with psycopg 3): {_DATABASE_URL_HINT}"
        )
    return url


REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
AMQP_SCHEMES = ("amqp://", "amqps://")


def check_redis_url(url: str, name: str = "REDIS_URL", *, broker: bool = False) -> str:
    """``url`` if it names one Redis server (or, for the broker, RabbitMQ); else
    ``SettingsError``.

    Redis Sentinel (``redis+sentinel://``) is refused with its own message: the rate
    limits, the idempotency keys and the broker would each need their own Sentinel
    client, and a half-supported failover is worse than none (docs/SCALING.md).
    """
    shown = without_password(url)
    if url.startswith(("redis+sentinel://", "rediss+sentinel://", "sentinel://")):
        raise SettingsError(
            f"{name}={shown!r}: Redis Sentinel is not supported; give the address of the "
            "current primary (redis://host:6379/0) or a managed Redis endpoint that fails "
            "over behind one address"
            + ("; for a broker that survives a node's loss, use RabbitMQ (amqp://)" * broker)
        )
    if not url.startswith(REDIS_SCHEMES):
        schemes = "redis://, rediss:// or unix://" + (", amqp:// or amqps://" if broker else "")
        raise SettingsError(f"{name}={shown!r} must start with {schemes}")
    return url


def check_rate_limit(text: str, name: str = "RATE_LIMIT") -> str:
    """``text`` if the rate limit parser Flask-Limiter uses reads it and every limit in it
    lets at least one request through; else ``SettingsError``."""
    from limits import parse_many

    try:
        parsed = parse_many(text)
    except ValueError:
        raise SettingsError(
            f"{name}={text!r} is not a rate limit: write a number of requests per unit, "
            "like 600 per minute, 10/second or 100 per hour;1000 per day"
        ) from None
    if any(item.amount < 1 for item in parsed):
        raise SettingsError(
            f"{name}={text!r} lets no request through: give at least 1 per unit "
            "(RATE_LIMITS_ENABLED=0 turns rate limiting off)"
        )
    return text


def parse_duration(text: str, name: str = "duration") -> timedelta:
    """Parse ``30d``, ``12h``, ``5m`` or ``3s`` into a positive ``timedelta``."""
    match = _DURATION.match(text or "")
    if not match:
        raise SettingsError(
            f"{name}={text!r} is not a duration: write a whole number and a unit, "
            "like 30d, 12h, 5m or 3s"
        )
    amount = int(match.group(1))
    if amount <= 0:
        raise SettingsError(f"{name}={text!r} must be greater than zero")
    return timedelta(**{_UNITS[match.group(2)]: amount})


def format_duration(value: timedelta) -> str:
    """The inverse of ``parse_duration`` for whole units (used in messages and docs)."""
    seconds = int(value.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


@dataclass(frozen=True, slots=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    redis_url: str = DEFAULT_REDIS_URL
    # The message broker: None means the Redis at ``redis_url`` (see ``broker``).
    broker_url: str | None = None
    retention_period: timedelta = _POLICY.retention_period
    removal_window: timedelta = _POLICY.removal_window
    # How long an invitation to join an organization as a guest can be accepted.
    invitation_ttl: timedelta = _POLICY.invitation_ttl
    sweep_interval: timedelta = timedelta(seconds=5)
    # A leave-pending or purge-pending membership with no progress for this long
    # has lost its message; the sweep sends it again.
    redrive_after: timedelta = _POLICY.redrive_after
    # Rows erased per committed batch of data removal.
    removal_batch_size: int = _POLICY.removal_batch_size
    # Memberships per data-removal message when many are sent at once (a sweep batch).
    removal_chunk_size: int = 200
    # Rows claimed per committed batch of the due-timer sweep.
    sweep_batch_size: int = _POLICY.sweep_batch_size
    # Connections one sweep expires due retention periods on at once (PostgreSQL only):
    # each is one database core at work.
    sweep_concurrency: int = 2
    jwt_secret: str | None = None
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    jwks_url: str | None = None
    # Signs the pages' session cookies; never taken from JWT_SECRET (see
    # ``web.pages.session_secret`` for when it is required).
    secret_key: str | None = field(default=None, repr=False)
    dev_sign_in: bool = False
    rate_limit: str = "600 per minute"
    rate_limits_enabled: bool = True
    # The address the service is reached at from outside, for links it sends away
    # (webhook confirmation URLs, links in e-mails).
    public_base_url: str = "http://127.0.0.1:8000"
    # Webhooks: endpoints on loopback or private networks are refused unless this is
    # set (development and tests only); retry and disable periods.
    webhook_allow_private_networks: bool = False
    webhook_retry_for: timedelta = _POLICY.webhook_retry_for
    webhook_disable_after: timedelta = _POLICY.webhook_disable_after
    # A member's removal request must be answered within this.
    removal_request_deadline: timedelta = _POLICY.removal_request_deadline
    # Mail: nothing is sent without SMTP_URL (smtp://user:pass@host:587 uses STARTTLS,
    # smtps:// implicit TLS).
    smtp_url: str | None = field(default=None, repr=False)
    mail_from: str = "Membership Lifecycle <no-reply@localhost>"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from the environment; raises ``SettingsError`` naming the variable."""
        env = os.environ if environ is None else environ

        def text(name: str) -> str | None:
            value = env.get(name, "").strip()
            return value or None

        def duration(name: str, default: timedelta) -> timedelta:
            raw = text(name)
            return default if raw is None else parse_duration(raw, name)

        def integer(name: str, default: int) -> int:
            raw = text(name)
            if raw is None:
                return default
            if not raw.isdigit() or int(raw) <= 0:
                raise SettingsError(f"{name}={raw!r} must be a positive whole number")
            return int(raw)

        def flag(name: str, default: bool) -> bool:
            raw = text(name)
            if raw is None:
                return default
            if raw.lower() in {"1", "true", "yes", "on"}:
                return True
            if raw.lower() in {"0", "false", "no", "off"}:
                return False
            raise SettingsError(f"{name}={raw!r} must be 1/0, true/false, yes/no or on/off")

        database_url = check_database_url(text("DATABASE_URL") or DEFAULT_DATABASE_URL)
        redis_url = check_redis_url(
            text("REDIS_URL") or embedded_redis_url() or DEFAULT_REDIS_URL, "REDIS_URL"
        )
        broker_url = text("BROKER_URL")
        if broker_url is not None and not broker_url.startswith(AMQP_SCHEMES):
            broker_url = check_redis_url(broker_url, "BROKER_URL", broker=True)
        defaults = cls()
        # Only a given limit is parsed: the parser's import is not free, and the default
        # is known to be good (a test parses it).
        rate_limit = text("RATE_LIMIT")
        rate_limit = defaults.rate_limit if rate_limit is None else check_rate_limit(rate_limit)
        return cls(
            database_url=database_url,
            redis_url=redis_url,
            broker_url=broker_url,
            retention_period=duration("RETENTION_PERIOD", defaults.retention_period),
            removal_window=duration("REMOVAL_WINDOW", defaults.removal_window),
            invitation_ttl=duration("INVITATION_TTL", defaults.invitation_ttl),
            sweep_interval=duration("SWEEP_INTERVAL", defaults.sweep_interval),
            redrive_after=duration("REDRIVE_AFTER", defaults.redrive_after),
            removal_batch_size=integer("REMOVAL_BATCH_SIZE", defaults.removal_batch_size),
            removal_chunk_size=integer("REMOVAL_CHUNK_SIZE", defaults.removal_chunk_size),
            sweep_batch_size=integer("SWEEP_BATCH_SIZE", defaults.sweep_batch_size),
            sweep_concurrency=integer("SWEEP_CONCURRENCY", defaults.sweep_concurrency),
            jwt_secret=text("JWT_SECRET"),
            jwt_issuer=text("JWT_ISSUER"),
            jwt_audience=text("JWT_AUDIENCE"),
            jwks_url=text("JWKS_URL"),
            secret_key=text("SECRET_KEY"),
            dev_sign_in=flag("DEV_SIGN_IN", False),
            rate_limit=rate_limit,
            rate_limits_enabled=flag("RATE_LIMITS_ENABLED", True),
            public_base_url=(text("PUBLIC_BASE_URL") or defaults.public_base_url).rstrip("/"),
            webhook_allow_private_networks=flag("WEBHOOK_ALLOW_PRIVATE_NETWORKS", False),
            webhook_retry_for=duration("WEBHOOK_RETRY_FOR", defaults.webhook_retry_for),
            webhook_disable_after=duration("WEBHOOK_DISABLE_AFTER", defaults.webhook_disable_after),
            removal_request_deadline=duration(
                "REMOVAL_REQUEST_DEADLINE", defaults.removal_request_deadline
            ),
            smtp_url=check_smtp_url(text("SMTP_URL")),
            mail_from=text("MAIL_FROM") or defaults.mail_from,
        )

    @property
    def send_mail(self) -> bool:
        """Members are mailed about changes only with a mail server (``SMTP_URL``)."""
        return self.smtp_url is not None

    @property
    def broker(self) -> str:
        """The broker's URL: ``BROKER_URL`` when given, else ``REDIS_URL``."""
        return self.broker_url or self.redis_url

    @property
    def broker_is_rabbitmq(self) -> bool:
        return self.broker.startswith(AMQP_SCHEMES)

    def with_changes(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]  # dataclass fields by name


def check_smtp_url(url: str | None) -> str | None:
    """``SMTP_URL`` as given, if it is ``smtp://`` or ``smtps://`` with a host; raises
    ``SettingsError`` otherwise (the URL itself is not repeated: it may hold a password)."""
    if url is None:
        return None
    scheme, _, rest = url.partition("://")
    host = rest.rpartition("@")[2].split("/", 1)[0]
    if scheme.lower() not in ("smtp", "smtps") or not host.strip(":"):
        raise SettingsError(
            "SMTP_URL must be smtp://[user:pass@]host[:port] (STARTTLS) or "
            "smtps://[user:pass@]host[:port] (TLS)"
        )
    return url
