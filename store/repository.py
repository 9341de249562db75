"""The base of every repository: the statements of one part of the store, bound to the
session of one unit of work.

The use cases (``memberships``) reach the database only through the repositories a
``UnitOfWork`` hands out (``uow.memberships``, ``uow.audit``, …); they import no
SQLAlchemy. Each repository lives next to the statements it runs, in the ``store`` module
of its part, and its methods are named for what they mean to the domain
(``claim_due_retention``, ``live_membership``), not for the SQL behind them. The unit
tests give the use cases an in-memory fake of the same attributes
(``tests/unit/fakes.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select
from sqlalchemy.orm import Session


class Repository:
    """Statements of one part of the store, run on one unit of work's session."""

    __slots__ = ("session",)

    def __init__(self, session: Session) -> None:
        self.session = session

    def page_after(
        self, query: Select[Any], id_column: Any, after: Any | None, limit: int
    ) -> Sequence[Any]:
        """One page of ``query``'s rows in ``id_column`` order after ``after`` (from the
        first when ``None``), and one row more: up to ``limit + 1`` rows, the last telling
        that another page follows (``memberships.reading.page_of``)."""
        if after is not None:
            query = query.where(id_column > after)
        return self.session.scalars(query.order_by(id_column).limit(limit + 1)).all()
