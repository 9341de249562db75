"""Operations commands: the scheduler process, the queues, the timers, dead letters and
a sweep by hand. ``--json`` gives scripts the same data the tables show."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click

from cli import LazyModule, emit, fail, main, services
from memberships.principal import SYSTEM
from settings import without_password

if TYPE_CHECKING:
    import redis

    from memberships import operations
else:
    redis = LazyModule("redis")
    operations = LazyModule("memberships.operations")


@main.command("scheduler")
@click.option("--ticks", type=int, default=None, help="Stop after this many sweeps.")
def scheduler(ticks: int | None) -> None:
    """Run the durable timers: a sweep every SWEEP_INTERVAL until SIGTERM or Ctrl-C."""
    from workers.scheduler import run_scheduler

    run_scheduler(services().settings, max_ticks=ticks)


@main.command("sweep")
@click.option(
    "--enqueue", is_flag=True, help="Send a sweep message to the workers instead of sweeping here."
)
def sweep(enqueue: bool) -> None:
    """One sweep now: expire due retention periods, re-drive stalled work."""
    from workers.dispatch import broker_dispatcher
    from workers.runtime import Runtime
    from workers.sweeper import run_sweep

    s = services()
    if enqueue:
        with _broker_answers():
            broker_dispatcher(s.settings).send_sweep()
        click.echo("sweep message sent", err=True)
        return
    runtime = Runtime(
        s.settings, s.dispatcher, clock=s.clock, session_factory_override=s.session_factory
    )
    emit(run_sweep(runtime))


@contextmanager
def _broker_answers() -> Iterator[None]:
    """A broker that does not answer is one line on stderr and exit status 1."""
    from dramatiq.errors import BrokerConnectionError

    from workers.inspection import BrokerUnavailable

    try:
        yield
    except BrokerUnavailable as error:
        fail(str(error))
    except (redis.RedisError, BrokerConnectionError) as error:
        fail(
            f"the broker at {without_password(services().settings.broker)} did not answer: "
            f"{error or type(error).__name__}"
        )


@contextmanager
def _port() -> Iterator[Any]:
    """The broker's queue port (``workers.inspection``), closed afterwards."""
    from workers.inspection import broker_queues

    port = broker_queues(services().settings)
    try:
        with _broker_answers():
            yield port
    finally:
        port.close()


def _table(headers: list[str], rows: list[list[Any]]) -> None:
    cells = [headers] + [["-" if v is None else str(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for row in cells:
        click.echo("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


@main.command("queues")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def queues(as_json: bool) -> None:
    """Per queue: ready, delayed, in flight, dead letters; and the workers seen."""
    from workers.inspection import queues_report

    with _port() as port:
        report = queues_report(port, services().session_factory)
    if as_json:
        emit(report)
        return
    where = f" ({report.namespace})" if report.namespace else ""
    click.echo(f"broker: {report.broker}{where}\n")
    _table(
        ["QUEUE", "READY", "DELAYED", "IN FLIGHT", "DEAD LETTERS"],
        [[q.name, q.ready, q.delayed, q.in_flight, q.dead_letters] for q in report.queues],
    )
    click.echo(f"\nworkers seen: {len(report.workers)}")
    for w in report.workers:
        click.echo(
            f"  {w.id}  queues={','.join(w.queues)}  threads={w.threads}  "
            f"seen {w.seen_seconds_ago}s ago"
        )


@main.command("timers")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--limit", type=click.IntRange(1, 1000), default=5, help="Entries per list.")
def timers(as_json: bool, limit: int) -> None:
    """Memberships by state, next due purges, overdue purges, removals and removal
    requests, stuck leaves."""
    s = services()
    with s.uow() as uow:
        report = operations.timers_report(uow, s.clock, SYSTEM, limit=limit)
    if as_json:
        emit(report)
        return
    click.echo(f"at {report.now.isoformat(timespec='seconds')}")
    _table(["STATE", "MEMBERSHIPS"], [[k, v] for k, v in report.by_state.items()])
    click.echo(
        f"\noverdue purges: {report.overdue_purges}   overdue removals: {report.overdue_removals}"
        f"   failing: {report.failing}   stalled: "
        + ", ".join(f"{k} {v}" for k, v in report.stalled.items())
    )
    click.echo(
        f"removals waiting on apps: {report.waiting_on_apps}"
        f"   of them overdue: {report.waiting_on_apps_overdue}"
    )
    click.echo(f"overdue removal requests: {report.overdue_removal_requests}")
    for title, entries in (
        ("next due purges", report.next_due_purges),
        ("overdue removals", report.overdue_removal_list),
        (
            "oldest leave-pending",
            (report.oldest_leave_pending,) if report.oldest_leave_pending else (),
        ),
    ):
        click.echo(f"\n{title}:")
        if not entries:
            click.echo("  none")
            continue
        _table(
            ["MEMBERSHIP", "STATE", "DUE / SINCE", "REMOVED", "ATTEMPTS", "LAST ERROR"],
            [
                [
                    e.membership_id,
                    e.state,
                    e.due_at.isoformat(timespec="seconds") if e.due_at else None,
                    e.removed_rows,
                    e.attempts,
                    e.last_error,
                ]
                for e in entries
            ],
        )
    if report.overdue_removal_request_list:
        click.echo("\noverdue removal requests:")
        _table(
            ["REQUEST", "MEMBERSHIP", "ORGANIZATION", "DUE BY"],
            [
                [
                    r.request_id,
                    r.membership_id,
                    r.organization_id,
                    r.due_by.isoformat("T", "seconds"),
                ]
                for r in report.overdue_removal_request_list
            ],
        )


@main.command("dead-letters")
@click.option("--queue", "queue", default=None, help="Only this queue (default: every queue).")
@click.option("--retry", is_flag=True, help="Put them back on their queues, retries reset.")
@click.option("--purge", is_flag=True, help="Drop them (the sweep re-drives what is left to do).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def dead_letters(queue: str | None, retry: bool, purge: bool, as_json: bool) -> None:
    """List dead-lettered messages, or retry or purge them."""
    if retry and purge:
        raise click.UsageError("--retry and --purge exclude each other")
    if retry or purge:
        with _port() as port:
            count = (port.retry_dead_letters if retry else port.purge_dead_letters)(queue)
        action = "retried" if retry else "purged"
        if as_json:
            emit({action: count})
        else:
            click.echo(f"{count} dead letters {action}")
        return
    with _port() as port:
        letters = port.list_dead_letters(queue, 100)
    if as_json:
        emit(letters)
        return
    if not letters:
        where = f" in {queue}" if queue else ""
        click.echo(f"no dead letters{where}: every message was handled or is still being retried")
        return
    _table(
        ["QUEUE", "ACTOR", "MEMBERSHIP", "RETRIES", "ERROR"],
        [
            [d.queue, d.actor_name, d.args[0] if d.args else None, d.retries, d.error]
            for d in letters
        ],
    )
