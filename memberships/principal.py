"""Who acts: a signed-in user, or the service itself (workers, scheduler, CLI)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Principal:
    id: str
    is_system: bool = False

    @classmethod
    def user(cls, user_id: str) -> Principal:
        return cls(id=user_id)


SYSTEM = Principal(id="system", is_system=True)
