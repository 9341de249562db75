"""What the ``dramatiq`` command imports (``dramatiq workers.actors``): the worker
process's composition point.

This is the one module allowed to build things at import, because the dramatiq
command gives it no other hook: it reads ``Settings.from_env()``, builds the
broker at ``BROKER_URL`` (``workers.broker``: Redis or RabbitMQ), sets it as
Dramatiq's broker, and declares the actors on it (``workers.tasks``). The worker
writes its heartbeat to the database (``workers.heartbeats``) and exports its own
Prometheus metrics through Dramatiq's ``Prometheus`` middleware (per actor:
messages, errors, retries, rejections, in progress and a duration histogram) on
``dramatiq_prom_host``:``dramatiq_prom_port`` (default ``0.0.0.0:9191``). Logs
become JSON lines with the membership and request ids, and a stop delivered twice
at once counts as one (``workers.shutdown``). Nothing else imports this module: web and cli send
through ``workers.dispatch``, tests declare the actors on their own broker.
"""

from __future__ import annotations

import dramatiq

from settings import Settings
from workers import logs
from workers.broker import build_broker
from workers.dispatch import BrokerDispatcher
from workers.heartbeats import WorkerHeartbeats
from workers.runtime import Runtime, load_removers
from workers.shutdown import ignore_echoed_sigterm
from workers.tasks import declare_actors
from workers.worker_metrics import worker_metrics_middleware

settings = Settings.from_env()
logs.configure(level=None)
ignore_echoed_sigterm()
broker = build_broker(settings)
dramatiq.set_broker(broker)
runtime = Runtime(
    settings, BrokerDispatcher(broker, settings.removal_chunk_size), removers=load_removers()
)
broker.add_middleware(WorkerHeartbeats(lambda: runtime.session_factory))
broker.add_middleware(worker_metrics_middleware())
actors = declare_actors(broker, runtime)

complete_leave = actors.complete_leave
remove_data = actors.remove_data
remove_data_many = actors.remove_data_many
sweep = actors.sweep
fan_out_events = actors.fan_out_events
deliver_webhook = actors.deliver_webhook
send_mail = actors.send_mail
send_mail_many = actors.send_mail_many
