"""Webhook deliveries per second: events fanned out to one endpoint, each delivery sent
through the real delivery code (claim, signature, the URL check, httpx, the outcome
recorded) to a local HTTP receiver answering ``204``, on several threads at once as a
worker runs them.

    .venv/bin/python -m bench.webhook_deliveries [--n 500] [--threads 4] [--database-url sqlite]
"""

from __future__ import annotations

import json
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

from sqlalchemy import select

from memberships import provisioning
from memberships.clock import utc_now
from memberships.principal import SYSTEM
from memberships.webhook_delivery import DeliveryConfig, deliver, fan_out
from store.database import make_engine, make_session_factory
from store.models import Event, WebhookDelivery, WebhookEndpoint
from store.policy import Policy
from store.unit_of_work import NullDispatcher, UnitOfWork
from tests.support.harness import arguments, emit, say, scratch_database
from tests.support.receiver import Reply, running

SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def deliveries_per_second(
    count: int, *, threads: int = 4, database_url: str = "sqlite", directory: Path | None = None
) -> float:
    """``count`` deliveries made through ``memberships.webhook_delivery.deliver`` to a local
    receiver on ``threads`` threads; deliveries per second (the fan-out not timed)."""
    with tempfile.TemporaryDirectory(prefix="bench-webhooks-") as scratch:
        where = directory or Path(scratch)
        with (
            scratch_database(database_url, where, "bench_webhooks") as url,
            running([Reply(204)]) as receiver,
        ):
            engine = make_engine(url)
            factory = make_session_factory(engine)
            policy = Policy(sweep_batch_size=2000)

            def uow() -> UnitOfWork:
                return UnitOfWork(factory, NullDispatcher(), policy)

            with uow() as u:
                org = provisioning.create_organization(
                    u, utc_now, SYSTEM, "bench.example", "Bench", None, None
                )
            now: datetime = utc_now()
            with factory() as session:
                session.add(
                    WebhookEndpoint(
                        organization_id=org.id,
                        url=receiver.url(),
                        secret=SECRET,
                        created_at=now,
                        updated_at=now,
                    )
                )
                for _ in range(count):
                    payload = {
                        "type": "membership.purged",
                        "timestamp": now.isoformat(),
                        "data": {},
                    }
                    session.add(
                        Event(
                            event_id=f"msg_{uuid.uuid4().hex}",
                            type="membership.purged",
                            organization_id=org.id,
                            occurred_at=now,
                            payload=json.dumps(payload),
                        )
                    )
                session.commit()
            with uow() as u:
                fan_out(u, utc_now)
            with factory() as session:
                ids = [str(i) for i in session.scalars(select(WebhookDelivery.id))]
            config = DeliveryConfig(allow_private_networks=True)

            def one(delivery_id: str) -> str:
                with uow() as u:
                    attempt = deliver(u, utc_now, delivery_id, config)
                return attempt.state if attempt else "skipped"

            started = time.perf_counter()
            with ThreadPoolExecutor(threads) as pool:
                states = list(pool.map(one, ids))
            seconds = time.perf_counter() - started
            engine.dispose()
    delivered = states.count("delivered")
    if delivered != count:
        raise RuntimeError(f"only {delivered} of {count} delivered: {set(states)}")
    return count / seconds


def main() -> None:
    parser = arguments(__doc__.splitlines()[0], n=500, runs=1)
    parser.add_argument("--threads", type=int, default=4, help="threads at once (default 4)")
    options = parser.parse_args()
    say(f"{options.n} deliveries on {options.threads} threads ({options.database_url})")
    rate = deliveries_per_second(
        options.n, threads=options.threads, database_url=options.database_url
    )
    emit(
        {
            "webhook_deliveries": options.n,
            "webhook_threads": options.threads,
            "webhook_deliveries_per_second": round(rate, 1),
        }
    )


if __name__ == "__main__":
    main()
