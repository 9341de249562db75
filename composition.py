"""The composition point: what ``Settings`` become for the rules and the workers.

The web app, the workers and the CLI each build their policy and their dispatcher
here and nowhere else, so the three cannot drift apart:

- ``policy_from``: the durations and batch sizes the rules use
  (``store.unit_of_work.Policy``, whose defaults are the settings' defaults).
- ``dispatcher_from``: the broker dispatcher that sends follow-up work to the
  workers. The workers package is part of the service: if it cannot be imported, that
  is an installation error and it is raised, not papered over with a dispatcher that
  sends nothing.
"""

from __future__ import annotations

from settings import Settings
from store.unit_of_work import Dispatcher, Policy


def policy_from(settings: Settings) -> Policy:
    """The rules' durations and batch sizes, as configured."""
    return Policy(
        retention_period=settings.retention_period,
        removal_window=settings.removal_window,
        removal_batch_size=settings.removal_batch_size,
        sweep_batch_size=settings.sweep_batch_size,
        redrive_after=settings.redrive_after,
        invitation_ttl=settings.invitation_ttl,
        removal_request_deadline=settings.removal_request_deadline,
        webhook_retry_for=settings.webhook_retry_for,
        webhook_disable_after=settings.webhook_disable_after,
        send_mail=settings.send_mail,
    )


def dispatcher_from(settings: Settings) -> Dispatcher:
    """The process's broker dispatcher for ``settings.redis_url`` (one per process)."""
    # Imported on first use: a CLI command that sends nothing does not load the broker.
    from workers.dispatch import broker_dispatcher

    return broker_dispatcher(settings)
