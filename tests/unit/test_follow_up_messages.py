"""The work a batch of state changes asks for (``memberships.batches``): sent once the
batch commits, to the actor its state waits on (``FOLLOW_UP``), with the id of the
request or sweep tick that made the change, so a worker's logs and audit rows name it
(docs/ARCHITECTURE.md, "One leave, from request to purged")."""

from __future__ import annotations

from collections.abc import Sequence

from memberships.batches import follow_up_after_commit
from statemachines.membership import FOLLOW_UP
from store.transitions import Moved
from tests.unit.fakes import FakeUnitOfWork


class Dispatcher:
    """Keeps every ``send_many`` with its request id."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, tuple[str, ...], str | None]] = []

    def send(self, actor_name: str, membership_id: str, request_id: str | None = None) -> None:
        self.sent.append((actor_name, (membership_id,), request_id))

    def send_many(
        self, actor_name: str, membership_ids: Sequence[str], request_id: str | None = None
    ) -> None:
        self.sent.append((actor_name, tuple(membership_ids), request_id))


def _moved(membership_id: str, to_state: str) -> Moved:
    return Moved(membership_id, to_state)


def test_a_batch_s_follow_up_goes_out_after_the_commit_with_the_tick_s_id() -> None:
    # Given a sweep tick's unit of work that moved two memberships into purge-pending and
    # one into restored (which waits for nothing)
    uow = FakeUnitOfWork(request_id="tick-7")
    uow.dispatcher = dispatcher = Dispatcher()  # type: ignore[assignment]
    moved = [
        _moved("m-1", "purge-pending"),
        _moved("m-2", "purge-pending"),
        _moved("m-3", "restored"),
    ]
    with uow:
        # When their follow-up is registered
        follow_up_after_commit(uow, moved)
        # Then nothing is sent before the commit
        assert dispatcher.sent == []
        uow.commit()
    # And after it, one message names both memberships, for the actor purge-pending
    # waits on, with the tick's id
    assert dispatcher.sent == [(FOLLOW_UP["purge-pending"], ("m-1", "m-2"), "tick-7")]


def test_a_rolled_back_batch_asks_for_nothing() -> None:
    # Given a unit of work that registered a leave's follow-up
    uow = FakeUnitOfWork(request_id="request-9")
    uow.dispatcher = dispatcher = Dispatcher()  # type: ignore[assignment]
    with uow:
        follow_up_after_commit(uow, [_moved("m-1", "leave-pending")])
        # When it ends without a commit
    # Then no message goes out
    assert dispatcher.sent == []
