"""The composition point turns Settings into the policy and the dispatcher, once for the
web app, the workers and the CLI (docs/ARCHITECTURE.md, "Composition")."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from composition import dispatcher_from, policy_from
from settings import Settings
from store.unit_of_work import Dispatcher, NullDispatcher, Policy, RecordingDispatcher


def test_every_policy_field_has_one_default_the_settings_share() -> None:
    # Given the defaults of the policy and of the settings
    policy, settings = Policy(), Settings()
    # Then each policy field's default is the setting's default
    for field in dataclasses.fields(Policy):
        assert getattr(settings, field.name) == getattr(policy, field.name), field.name
    # And the policy built from default settings is the default policy
    assert policy_from(settings) == policy


def test_the_policy_takes_each_configured_value() -> None:
    # Given settings that differ from every default
    settings = Settings(
        retention_period=timedelta(days=3),
        removal_window=timedelta(days=4),
        removal_batch_size=7,
        sweep_batch_size=9,
        redrive_after=timedelta(seconds=11),
    )
    # When the policy is built
    policy = policy_from(settings)
    # Then it carries them all
    assert policy == Policy(timedelta(days=3), timedelta(days=4), 7, 9, timedelta(seconds=11))


def test_the_dispatcher_is_the_brokers_and_complete() -> None:
    # Given default settings
    # When the dispatcher is built
    dispatcher = dispatcher_from(Settings())
    # Then it is the workers' broker dispatcher, one per process, with the whole protocol
    assert type(dispatcher).__name__ == "BrokerDispatcher"
    assert dispatcher_from(Settings()) is dispatcher
    for implementation in (dispatcher, NullDispatcher(), RecordingDispatcher()):
        assert callable(implementation.send) and callable(implementation.send_many)
        _typed: Dispatcher = implementation


def test_the_webhook_variables_reach_the_policy_and_the_delivery() -> None:
    from types import SimpleNamespace
    from typing import Any, cast

    from workers.webhooks import delivery_config

    def allows_private_networks(settings: Settings) -> bool:
        """What a worker's deliveries are configured with (its runtime has ``settings``)."""
        runtime = cast(Any, SimpleNamespace(settings=settings))
        return delivery_config(runtime).allow_private_networks

    # Given no webhook variables: retried 3 days, disabled after 5, public addresses only
    defaults = Settings.from_env({})
    assert (defaults.webhook_retry_for, defaults.webhook_disable_after) == (
        timedelta(days=3),
        timedelta(days=5),
    )
    assert allows_private_networks(defaults) is False
    # When each is set
    settings = Settings.from_env(
        {
            "WEBHOOK_RETRY_FOR": "6h",
            "WEBHOOK_DISABLE_AFTER": "2d",
            "WEBHOOK_ALLOW_PRIVATE_NETWORKS": "1",
        }
    )
    # Then the rules and the delivery use them
    policy = policy_from(settings)
    assert (policy.webhook_retry_for, policy.webhook_disable_after) == (
        timedelta(hours=6),
        timedelta(days=2),
    )
    assert allows_private_networks(settings) is True
