"""The workers against a real Redis (a private redis-server per module, flushed per test):
messages after commit, pipelined sweep batches run by a real worker, duplicate deliveries,
and what operators see — queues, timers, dead letters and metrics — for known situations."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest
import redis
from click.testing import CliRunner
from dramatiq import Message, Worker
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select
from test_workers_sweep import insert_memberships

from cli import Services, main
from memberships import admin, self_service
from settings import Settings
from store.models import AuditEvent, Membership
from store.unit_of_work import Policy, UnitOfWork
from tests.support.harness import free_port, redis_server
from workers import inspection
from workers.broker import NAMESPACE, build_broker
from workers.dispatch import BrokerDispatcher
from workers.heartbeats import WorkerHeartbeats
from workers.metrics import (
    LifecycleCollector,
    WebMetrics,
    metrics_redis_client,
    render,
)
from workers.runtime import Runtime
from workers.tasks import declare_actors


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    """A redis-server of our own, so FLUSHALL touches nobody else's data."""
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.fixture
def client(redis_url):
    c = redis.Redis.from_url(redis_url)
    c.flushall()
    yield c
    c.close()


@pytest.fixture
def settings(redis_url, database_url):
    return Settings(database_url=database_url, redis_url=redis_url, removal_batch_size=25)


@pytest.fixture
def broker(redis_url, client):
    b = build_broker(Settings(redis_url=redis_url))
    yield b
    b.close()


def _uow(session_factory, broker, request_id=None, policy=None):
    return UnitOfWork(session_factory, BrokerDispatcher(broker), policy or Policy(), request_id)


def _ready(client, queue):
    return [
        Message.decode(client.hget(f"{NAMESPACE}:{queue}.msgs", i))
        for i in client.lrange(f"{NAMESPACE}:{queue}", 0, -1)
    ]


def _wait_until(predicate, timeout=20.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


class RunningWorker:
    """The actors declared on the Redis broker, run by a Dramatiq worker in this process."""

    def __init__(self, settings, broker, session_factory, clock):
        self.runtime = Runtime(
            settings,
            BrokerDispatcher(broker),
            clock=clock,
            session_factory_override=session_factory,
        )
        self.actors = declare_actors(broker, self.runtime)
        self.worker = Worker(broker, worker_timeout=50, worker_threads=4)

    def __enter__(self):
        self.worker.start()
        return self

    def __exit__(self, *exc):
        self.worker.stop()

    def drain(self, timeout_ms=20_000):
        """Wait until every queue of the broker is empty with nothing in flight (Dramatiq's
        queue size counts unacknowledged messages too), and the worker has finished what it
        took; then assert it, so a message still queued or unacknowledged fails the test."""
        broker = self.worker.broker
        queues = [q for q in broker.get_declared_queues() if not q.endswith((".DQ", ".XQ"))]
        for _ in range(10):
            for queue in queues:
                broker.join(queue, timeout=timeout_ms)
            self.worker.join()
            # a message an actor sent to another queue while the first was joined
            if all(broker.do_qsize(queue) == 0 for queue in queues):
                break
        assert {queue: broker.do_qsize(queue) for queue in queues} == dict.fromkeys(queues, 0)


def test_a_committed_leave_sends_its_message_and_a_rolled_back_one_sends_nothing(
    world, session_factory, broker, client
):
    # Given a unit of work for HTTP request "req-7" that commits a leave
    with _uow(session_factory, broker, "req-7") as uow:
        self_service.request_leave(uow, world.clock, world.principal("ann"), "open.example")
    # And one that registers a message but never commits
    with _uow(session_factory, broker) as uow:
        uow.send_after_commit("complete_leave", world.membership("open", "pat"))
    # Then only the committed one is on the leaves queue, by its contract
    [message] = _ready(client, "leaves")
    assert message.actor_name == "complete_leave"
    assert message.args == (world.membership("open", "ann"),)
    assert message.kwargs == {"request_id": "req-7"}


def test_a_sweep_batch_is_pipelined_to_redis_and_run_to_the_end_by_a_real_worker(
    settings, session_factory, clock, broker, client
):
    # Given 120 memberships past their purge due time
    ids = insert_memberships(
        session_factory,
        clock,
        [("soft-deleted", "b2b-collaboration")] * 120,
        purge_due_at=clock() - timedelta(seconds=1),
    )
    # When one sweep runs (batches of 50, removal chunks of 20): its messages reach Redis
    # in pipelines
    dispatcher = BrokerDispatcher(broker, removal_chunk_size=20)
    with UnitOfWork(session_factory, dispatcher, Policy(sweep_batch_size=50)) as uow:
        from memberships.sweep import sweep

        report = sweep(uow, clock)
    assert report.expired == 120
    # Then each sweep batch became remove_data_many messages of at most 20 ids each
    queued = _ready(client, "removals")
    assert {m.actor_name for m in queued} == {"remove_data_many"}
    assert sorted(len(m.args[0]) for m in queued) == [10, 10, 20, 20, 20, 20, 20]
    assert sorted(i for m in queued for i in m.args[0]) == sorted(ids)
    assert {m.kwargs["request_id"] for m in queued} == {report.tick_id}
    # And a real worker consumes them until every membership is purged
    with RunningWorker(settings, broker, session_factory, clock):

        def all_purged():
            with session_factory() as session:
                return session.scalar(
                    select(func.count())
                    .select_from(Membership)
                    .where(Membership.id.in_(ids), Membership.state == "purged")
                ) == len(ids)

        _wait_until(all_purged, what="every membership purged")


def test_duplicate_deliveries_to_concurrent_worker_threads_have_no_double_effect(
    world, settings, session_factory, broker
):
    # Given ann and pat left, and each message is delivered four times
    with _uow(session_factory, broker) as uow:
        self_service.request_leave(uow, world.clock, world.principal("ann"), "open.example")
    with _uow(session_factory, broker) as uow:
        self_service.request_leave(uow, world.clock, world.principal("pat"), "open.example")
    ann, pat = world.membership("open", "ann"), world.membership("open", "pat")
    dispatcher = BrokerDispatcher(broker)
    for _ in range(3):
        dispatcher.send("complete_leave", ann)
        dispatcher.send("complete_leave", pat)
        dispatcher.send("remove_data", pat)
    # When a worker with four threads runs them
    with RunningWorker(settings, broker, session_factory, world.clock) as worker:
        # Then every message, duplicates and the follow-ups they sent included, is consumed
        worker.drain()
    with session_factory() as session:
        states = (session.get(Membership, ann).state, session.get(Membership, pat).state)
    assert states == ("soft-deleted", "purged")
    # And each transition is audited once, each row removed once, and no race was lost
    with session_factory() as session:
        actions = session.execute(
            select(AuditEvent.membership_id, AuditEvent.action, AuditEvent.outcome)
        ).all()
        assert session.get(Membership, pat).removed_rows == 30
    assert [a for m, a, _ in actions if m == ann].count("complete_leave") == 1
    assert [a for m, a, _ in actions if m == pat].count("complete_leave") == 1
    assert [a for m, a, _ in actions if m == pat].count("finish_removal") == 1
    assert [o for *_, o in actions].count("denied") == 0


def test_duplicate_chunks_on_concurrent_worker_threads_purge_each_membership_once(
    world, settings, session_factory, broker
):
    # Given ann (122 rows) and pat (30 rows) purge-pending, and their chunk sent four times
    # (a sweep batch, a retry, two re-drives)
    ann, pat = world.membership("open", "ann"), world.membership("open", "pat")
    with _uow(session_factory, broker) as uow:
        admin.remove(uow, world.clock, world.principal("gadmin"), world.orgs["open"], ann)
    with _uow(session_factory, broker) as uow:
        admin.purge(uow, world.clock, world.principal("gadmin"), "open.example", ann)
    with _uow(session_factory, broker) as uow:
        admin.remove(uow, world.clock, world.principal("gadmin"), world.orgs["open"], pat)
    client = broker.client
    client.flushall()
    dispatcher = BrokerDispatcher(broker, removal_chunk_size=2)
    for _ in range(4):
        dispatcher.send_many("remove_data", [ann, pat])
    assert [m.actor_name for m in _ready(client, "removals")] == ["remove_data_many"] * 4
    # When a worker with four threads runs them at once (batches of 25 rows)
    with RunningWorker(settings, broker, session_factory, world.clock) as worker:
        # Then all four chunks (and anything they sent) are consumed
        worker.drain()
    with session_factory() as session:
        assert {session.get(Membership, m).state for m in (ann, pat)} == {"purged"}
    # And every row was counted once, each membership finished once, and no race was lost
    with session_factory() as session:
        assert [session.get(Membership, m).removed_rows for m in (ann, pat)] == [122, 30]
        actions = session.execute(
            select(AuditEvent.membership_id, AuditEvent.action, AuditEvent.outcome)
        ).all()
    assert [m for m, a, _ in actions if a == "finish_removal"].count(ann) == 1
    assert [m for m, a, _ in actions if a == "finish_removal"].count(pat) == 1
    assert [o for *_, o in actions].count("denied") == 0


def _dead_letter(broker, queue, membership_id, retries=8):
    """Make a real dead letter the way a worker does: enqueue, fetch, nack."""
    message = Message(
        queue_name=queue,
        actor_name="remove_data",
        args=(membership_id,),
        kwargs={},
        options={"retries": retries, "traceback": "Traceback\nConnectionError: store down"},
    )
    broker.enqueue(message)
    [raw] = broker.do_fetch(queue, 1)
    broker.do_nack(queue, Message.decode(raw).options["redis_message_id"])


def _known_queues_situation(broker, client, session_factory):
    dispatcher = BrokerDispatcher(broker)
    for i in range(3):
        dispatcher.send("complete_leave", f"m-{i}")
    for i in range(2):
        broker.enqueue(
            Message(
                queue_name="leaves",
                actor_name="complete_leave",
                args=(f"d-{i}",),
                kwargs={},
                options={},
            ),
            delay=60_000,
        )
    broker.do_fetch("leaves", 1)  # a worker took one and is working on it
    _dead_letter(broker, "removals", "x-1")
    _dead_letter(broker, "removals", "x-2")
    heartbeats = WorkerHeartbeats(lambda: session_factory)
    heartbeats._info = {"host": "h", "pid": 1, "queues": ["leaves", "removals"], "threads": 4}
    heartbeats.beat()


def test_queues_report_counts_ready_delayed_in_flight_dead_letters_and_workers(
    broker, client, settings, session_factory
):
    # Given 3 leaves sent (one taken by a worker), 2 delayed retries, 2 dead removals,
    # and one worker announcing itself
    _known_queues_situation(broker, client, session_factory)
    # When operators look at the queues
    report = inspection.queues_report(inspection.broker_queues(settings), session_factory)
    # Then each number is what happened
    by_name = {q.name: q for q in report.queues}
    assert by_name["leaves"] == inspection.QueueStats("leaves", 2, 2, 1, 0)
    assert by_name["removals"] == inspection.QueueStats("removals", 0, 0, 0, 2)
    assert by_name["timers"] == inspection.QueueStats("timers", 0, 0, 0, 0)
    assert [(w.pid, w.queues) for w in report.workers] == [(1, ("leaves", "removals"))]


def _cli(settings, clock, *args):
    services = Services(settings=settings, clock=clock)
    try:
        result = CliRunner().invoke(main, list(args), obj=services)
    finally:
        if "session_factory" in services.__dict__:  # the command opened the database
            services.session_factory.kw["bind"].dispose()
    assert result.exit_code == 0, result.output
    return result.output


def test_lifecycle_queues_json_reports_the_known_situation(
    settings, clock, broker, client, session_factory
):
    # Given the known situation, When `lifecycle queues --json` runs
    _known_queues_situation(broker, client, session_factory)
    report = json.loads(_cli(settings, clock, "queues", "--json"))
    # Then it says the same as the report, and the table form names every queue
    leaves = next(q for q in report["queues"] if q["name"] == "leaves")
    assert (leaves["ready"], leaves["delayed"], leaves["inFlight"]) == (2, 2, 1)
    assert len(report["workers"]) == 1
    table = _cli(settings, clock, "queues")
    assert "removals" in table and "workers seen: 1" in table


def test_dead_letters_are_listed_retried_with_fresh_retries_and_purged(
    settings, clock, broker, client
):
    # Given two dead removals
    _dead_letter(broker, "removals", "x-1")
    _dead_letter(broker, "removals", "x-2")
    # When operators list them
    listed = json.loads(_cli(settings, clock, "dead-letters", "--json"))
    assert sorted(d["args"][0] for d in listed) == ["x-1", "x-2"]
    assert listed[0]["error"] == "ConnectionError: store down"
    # And retry them: they are ready again, their retry count reset
    assert "2 dead letters retried" in _cli(
        settings, clock, "dead-letters", "--retry", "--queue", "removals"
    )
    ready = _ready(client, "removals")
    assert sorted(m.args[0] for m in ready) == ["x-1", "x-2"]
    assert all("retries" not in m.options for m in ready)
    # And purge a new one: it is gone
    _dead_letter(broker, "removals", "x-3")
    assert json.loads(_cli(settings, clock, "dead-letters", "--purge", "--json")) == {"purged": 1}
    assert inspection.broker_queues(settings).list_dead_letters(None, 100) == []
    # And with none left, the list says so in words instead of printing a bare header
    assert _cli(settings, clock, "dead-letters").strip() == (
        "no dead letters: every message was handled or is still being retried"
    )


def _known_timers_situation(world, session_factory, broker):
    """ann in open: soft-deleted (due in 30 days); pat: purge-pending past its window with
    a failure; ann in bare: leave-pending whose message was lost."""
    with _uow(session_factory, broker) as uow:
        self_service.request_leave(uow, world.clock, world.principal("ann"), "open.example")
    with _uow(session_factory, broker) as uow:
        from memberships import automatic

        automatic.complete_leave(uow, world.clock, world.membership("open", "ann"))
    with _uow(session_factory, broker) as uow:
        admin.remove(
            uow,
            world.clock,
            world.principal("gadmin"),
            world.orgs["open"],
            world.membership("open", "pat"),
        )
    with _uow(session_factory, broker) as uow:
        from memberships.failures import record_failure

        record_failure(uow, world.membership("open", "pat"), "ConnectionError: store down")
    world.clock.advance(timedelta(days=31))
    with _uow(session_factory, broker) as uow:
        self_service.request_leave(uow, world.clock, world.principal("ann"), "bare.example")
    world.clock.advance(timedelta(minutes=5))


def test_lifecycle_timers_reports_the_known_situation(world, settings, session_factory, broker):
    # Given the known timers situation
    _known_timers_situation(world, session_factory, broker)
    # When `lifecycle timers --json` runs (camelCase names, as on the API)
    report = json.loads(_cli(settings, world.clock, "timers", "--json"))
    assert "by_state" not in report
    # Then the counts and lists are those of the situation
    assert report["byState"]["soft-deleted"] == 1
    assert report["byState"]["purge-pending"] == 1
    assert report["byState"]["leave-pending"] == 1
    assert report["overduePurges"] == 1  # ann's 30 days have passed, no sweep ran
    assert report["overdueRemovals"] == 1  # pat's removal window has passed
    assert report["failing"] == 1
    assert report["stalled"] == {"leave-pending": 1, "purge-pending": 1}
    assert [e["membershipId"] for e in report["nextDuePurges"]] == [world.membership("open", "ann")]
    [late] = report["overdueRemovalList"]
    assert late["membershipId"] == world.membership("open", "pat")
    assert late["lastError"] == "ConnectionError: store down"
    assert report["oldestLeavePending"]["membershipId"] == world.membership("bare", "ann")
    # And the table form shows the same
    assert "overdue purges: 1   overdue removals: 1" in _cli(settings, world.clock, "timers")


def _samples(registry):
    text, content_type = render(registry)
    assert content_type.startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text.decode())
        for s in family.samples
    }


def test_metrics_are_computed_at_scrape_time_from_the_database_and_redis(
    world, session_factory, broker, client, redis_url
):
    # Given the known timers and queues situations, and two requests the process served
    _known_timers_situation(world, session_factory, broker)
    client.flushall()
    _known_queues_situation(broker, client, session_factory)
    collector = LifecycleCollector(
        lambda: UnitOfWork(session_factory, policy=Policy()),
        client,
        lambda: inspection.broker_queues(Settings(redis_url=redis_url)),
        session_factory,
        clock=world.clock,
    )
    metrics = WebMetrics(collector)
    metrics.record("GET", "/v1/me/organizations", 200, 0.02)
    metrics.record("GET", "/v1/me/organizations", 200, 0.3)
    # When Prometheus scrapes
    samples = _samples(metrics.registry)
    # Then every number comes from the shared stores
    assert samples[("lifecycle_memberships", (("state", "purge-pending"),))] == 1
    assert samples[("lifecycle_purges_overdue", ())] == 1
    assert samples[("lifecycle_removals_overdue", ())] == 1
    assert samples[("lifecycle_transitions_total", (("event", "request_leave"),))] == 2
    assert samples[("lifecycle_transitions_total", (("event", "remove"),))] == 1
    assert samples[("lifecycle_queue_messages", (("queue", "leaves"), ("status", "ready")))] == 2
    assert samples[("lifecycle_dead_letters", (("queue", "removals"),))] == 2
    assert samples[("lifecycle_workers_seen", ())] == 1
    key = (
        "lifecycle_http_requests_total",
        (("method", "GET"), ("route", "/v1/me/organizations"), ("status", "200")),
    )
    assert samples[key] == 2
    durations = (("route", "/v1/me/organizations"), ("status", "200"))
    assert samples[("lifecycle_http_request_duration_seconds_count", durations)] == 2
    bucket = (("le", "0.025"), *durations)
    assert samples[("lifecycle_http_request_duration_seconds_bucket", bucket)] == 1
    assert samples[("lifecycle_scrape_source_up", (("source", "broker"),))] == 1
    assert samples[("process_resident_memory_bytes", ())] > 0


def test_the_database_and_queue_figures_are_reused_for_a_few_seconds(world, session_factory):
    # Given a collector whose reads are counted, on a clock the test moves
    reads = []
    now = [100.0]

    def uow():
        reads.append(now[0])
        return UnitOfWork(session_factory, policy=Policy())

    dead_url = f"redis://127.0.0.1:{free_port()}/0"
    dead = metrics_redis_client(Settings(redis_url=dead_url))
    collector = LifecycleCollector(
        uow,
        dead,
        lambda: inspection.broker_queues(Settings(redis_url=dead_url)),
        session_factory,
        clock=world.clock,
        monotonic=lambda: now[0],
    )
    registry = WebMetrics(collector).registry
    # When it is scraped three times within five seconds, then once more after
    first = _samples(registry)
    now[0] += 4.9
    _samples(registry)
    _samples(registry)
    assert len(reads) == 1
    now[0] += 0.2
    later = _samples(registry)
    # Then the database was read twice, and the figures are the same ones
    assert len(reads) == 2
    key = ("lifecycle_memberships", (("state", "active"),))
    assert first[key] == later[key]


def test_http_metrics_label_only_known_methods_and_matched_routes():
    # Given made-up methods and unmatched paths
    metrics = WebMetrics()
    metrics.record("BREW", None, 405, 0.001)
    metrics.record("PROPFIND", None, 405, 0.001)
    metrics.record("GET", None, 404, 0.001)
    samples = _samples(metrics.registry)
    # Then they share one "other" method label and one "<unmatched>" route label
    other = (("method", "other"), ("route", "<unmatched>"), ("status", "405"))
    assert samples[("lifecycle_http_requests_total", other)] == 2
    unmatched = (("method", "GET"), ("route", "<unmatched>"), ("status", "404"))
    assert samples[("lifecycle_http_requests_total", unmatched)] == 1


def test_metrics_still_answer_when_redis_does_not(session_factory, world):
    # Given a collector whose Redis is not there
    nowhere = Settings(redis_url=f"redis://127.0.0.1:{free_port()}/0")
    dead = metrics_redis_client(nowhere)
    collector = LifecycleCollector(
        lambda: UnitOfWork(session_factory),
        dead,
        lambda: inspection.broker_queues(nowhere),
        session_factory,
        clock=world.clock,
    )
    # When scraped, Then database metrics are served and Redis is reported down
    samples = _samples(WebMetrics(collector).registry)
    assert samples[("lifecycle_scrape_source_up", (("source", "broker"),))] == 0
    assert samples[("lifecycle_scrape_source_up", (("source", "database"),))] == 1
    with world.uow() as uow:
        active = uow.session.scalar(
            select(func.count()).select_from(Membership).where(Membership.state == "active")
        )
    assert samples[("lifecycle_memberships", (("state", "active"),))] == active > 0


def test_lifecycle_sweep_runs_one_sweep_and_says_what_it_did(settings, session_factory, clock):
    # Given two memberships past their purge due time
    insert_memberships(
        session_factory,
        clock,
        [("soft-deleted", "b2b-collaboration")] * 2,
        purge_due_at=clock() - timedelta(seconds=1),
    )
    # When an operator runs one sweep by hand
    report = json.loads(_cli(settings, clock, "sweep"))
    # Then both were moved on, in one batch (or, on PostgreSQL, where the sweep claims on
    # SWEEP_CONCURRENCY connections at once, one batch per connection that won a row)
    on_postgresql = settings.database_url.startswith("postgresql")
    assert report["expired"] == 2
    assert 1 <= report["batches"] <= (settings.sweep_concurrency if on_postgresql else 1)
    assert report["redriven"] == {"complete_leave": 0, "remove_data": 0}


@pytest.mark.parametrize("command", [["queues"], ["dead-letters"], ["dead-letters", "--purge"]])
def test_operators_commands_say_in_one_line_when_redis_does_not_answer(command):
    # Given a Redis that is not there
    settings = Settings(redis_url=f"redis://127.0.0.1:{free_port()}/0")
    # When an operator looks at the queues, Then one line says so, with exit status 1
    result = CliRunner().invoke(main, command, obj=Services(settings=settings))
    assert result.exit_code == 1
    assert "did not answer" in result.output and "Traceback" not in result.output


def test_an_operator_retries_the_dead_letters_from_the_operations_page(
    world, settings, session_factory, broker, client
):
    from tests.e2e.pages_helpers import Visitor, text_of
    from web import create_app

    # Given two dead removals, and the platform operator on the Operations page
    _dead_letter(broker, "removals", "x-1")
    _dead_letter(broker, "removals", "x-2")
    app = create_app(
        settings.with_changes(dev_sign_in=True, jwt_secret="s" * 40, rate_limits_enabled=False),
        session_factory=session_factory,
        clock=world.clock,
        rate_limit_key_prefix="dead-letters-page",
    )
    visitor = Visitor(app.test_client())
    assert visitor.sign_in(world.users["ops"]).status_code == 303
    assert "2 messages failed every retry" in text_of(visitor.get("/ops"))
    # When they press "Retry all dead letters"
    page = visitor.follow(visitor.submit("/ops", "/ops/dead-letters/retry"))
    # Then both are back on their queue with fresh retries, and the page says so
    assert "2 dead letters put back on the queue to run again." in text_of(page)
    assert sorted(m.args[0] for m in _ready(client, "removals")) == ["x-1", "x-2"]
    assert "No dead letters" in text_of(page)
    # And someone without the operator role cannot do it
    other = Visitor(app.test_client())
    assert other.sign_in(world.users["gadmin"]).status_code == 303
    refused = other.submit("/account/organizations", "/ops/dead-letters/retry")
    assert refused.status_code == 403
