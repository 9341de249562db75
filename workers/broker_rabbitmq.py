"""The RabbitMQ side of the broker: Dramatiq's ``RabbitmqBroker`` on ``BROKER_URL``.

Imported only when ``BROKER_URL`` is ``amqp://…``/``amqps://…``, so a Redis
deployment never loads pika. Publisher confirms are on: a send returns only once
RabbitMQ has taken the message, as a Redis send returns only once Redis has, so a
use case's "committed, then sent" means the same on both.
"""

from __future__ import annotations

import pika
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.middleware import Middleware

CONNECT_TIMEOUT_SECONDS = 2.0
HEARTBEAT_SECONDS = 30


def connection_parameters(url: str) -> pika.URLParameters:
    """pika's parameters for ``url`` with a short connect timeout (a web request sending
    after its commit must not wait long for a RabbitMQ that is down) unless the URL sets
    its own."""
    parameters = pika.URLParameters(url)
    if "socket_timeout" not in url:
        parameters.socket_timeout = CONNECT_TIMEOUT_SECONDS
    if "blocked_connection_timeout" not in url:
        parameters.blocked_connection_timeout = 10.0
    if "heartbeat" not in url:
        parameters.heartbeat = HEARTBEAT_SECONDS
    return parameters


def build_rabbitmq_broker(url: str, middleware: list[Middleware]) -> RabbitmqBroker:
    broker = RabbitmqBroker(confirm_delivery=True, middleware=middleware)
    broker.parameters = connection_parameters(url)
    return broker
