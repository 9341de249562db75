"""The background side: Dramatiq actors on Redis or RabbitMQ, the scheduler, and the
operators' view.

No business rule lives here: an actor logs the id, opens a unit of work and calls one
use case of ``memberships``. The modules:

- ``messages``   the message contract: actor names, queues, arguments
- ``broker``     the one place that builds the broker (``BROKER_URL``: Redis, or RabbitMQ
                 through ``broker_rabbitmq``; a stub for unit tests)
- ``dispatch``   ``broker_dispatcher(settings)``: what web and cli send through
- ``runtime``    what a worker or scheduler process works with, built from ``Settings``
- ``tasks``      the actors, declared on a given broker; retry-or-give-up in one place
- ``actors``     what ``dramatiq workers.actors`` imports: the worker's composition point
- ``sweeper``    one sweep of the durable timers, logged
- ``scheduler``  the ``lifecycle scheduler`` process: a sweep every ``SWEEP_INTERVAL``
- ``inspection`` the broker port: queues, dead letters, workers; ``queues_redis`` and
                 ``queues_rabbitmq`` read each broker its own way
- ``metrics``    Prometheus, computed at scrape time from the database, broker and Redis
- ``worker_metrics`` the worker's own Prometheus (Dramatiq's ``Prometheus`` middleware)
- ``heartbeats`` workers announce themselves in the database
- ``logs``       JSON log lines with the membership and request ids
- ``shutdown``   one stop request is one stop
"""
