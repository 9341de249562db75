"""The background side: Dramatiq actors on Redis, the scheduler, and the operators' view.

No business rule lives here: an actor logs the id, opens a unit of work and calls one
use case of ``memberships``. The modules:

- ``messages``   the message contract: actor names, queues, arguments
- ``broker``     the one place that builds the broker (Redis; a stub for unit tests)
- ``dispatch``   ``broker_dispatcher(settings)``: what web and cli send through
- ``runtime``    what a worker or scheduler process works with, built from ``Settings``
- ``tasks``      the actors, declared on a given broker; retry-or-give-up in one place
- ``actors``     what ``dramatiq workers.actors`` imports: the worker's composition point
- ``sweeper``    one sweep of the durable timers, logged
- ``scheduler``  the ``lifecycle scheduler`` process: a sweep every ``SWEEP_INTERVAL``
- ``inspection`` queues, dead letters and workers, read from the broker's Redis keys
- ``metrics``    Prometheus, computed at scrape time from the database and Redis
- ``presence``   workers announce themselves in Redis
- ``logs``       JSON log lines with the membership and request ids
- ``shutdown``   one stop request is one stop
"""
