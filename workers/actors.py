"""What the ``dramatiq`` command imports (``dramatiq workers.actors``): the worker
process's composition point.

This is the one module allowed to build things at import, because the dramatiq
command gives it no other hook: it reads ``Settings.from_env()``, builds the
Redis broker (``workers.broker``), sets it as Dramatiq's broker, and declares
the actors on it (``workers.tasks``). Logs become JSON lines with the membership
and request ids, and a stop delivered twice at once counts as one
(``workers.shutdown``). Nothing else imports this module: web and cli send
through ``workers.dispatch``, tests declare the actors on their own broker.
"""

from __future__ import annotations

import dramatiq

from settings import Settings
from workers import logs
from workers.broker import NAMESPACE, build_broker
from workers.dispatch import BrokerDispatcher
from workers.presence import WorkerPresence
from workers.runtime import Runtime, load_removers
from workers.shutdown import ignore_echoed_sigterm
from workers.tasks import declare_actors

settings = Settings.from_env()
logs.configure(level=None)
ignore_echoed_sigterm()
broker = build_broker(settings)
dramatiq.set_broker(broker)
broker.add_middleware(WorkerPresence(broker.client, NAMESPACE))
runtime = Runtime(
    settings, BrokerDispatcher(broker, settings.removal_chunk_size), removers=load_removers()
)
actors = declare_actors(broker, runtime)

complete_leave = actors.complete_leave
remove_data = actors.remove_data
remove_data_many = actors.remove_data_many
sweep = actors.sweep
