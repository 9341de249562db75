"""Documentation generated from the lifecycle machine class, and from nothing else.

Pure functions: no Flask, no SQL, no Dramatiq. The ``lifecycle diagram`` command
prints what these return (``--format mermaid`` → :func:`mermaid`, ``--format md``
→ :func:`lifecycle_markdown`, ``--format svg`` → :func:`svg`), and a unit test
fails when the committed ``docs/lifecycle.md`` differs from
:func:`lifecycle_markdown`.

The diagrams come from python-statemachine's own renderers
(``statemachine.contrib.diagram.formatter``); the tables come from the class's
states and transitions. The only hand-written facts here are what each state
means and who fires each event: both are checked against the class by tests, so
adding a state or an event without documenting it fails loudly.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Sequence

from statemachine import State
from statemachine.contrib.diagram import GraphvizNotFoundError
from statemachine.contrib.diagram.formatter import formatter

from .membership import MembershipLifecycle, MembershipState

__all__ = [
    "CURRENT_STATE_CLASS",
    "FIRED_BY",
    "GENERATE_COMMAND",
    "GUARD_WORDS",
    "STATE_MEANINGS",
    "GraphvizMissing",
    "PydotMissing",
    "lifecycle_markdown",
    "mermaid",
    "svg",
    "transition_table",
]

GENERATE_COMMAND = "lifecycle diagram --format md -o docs/lifecycle.md"
"""The command that regenerates ``docs/lifecycle.md``."""

CURRENT_STATE_CLASS = "current"
"""The Mermaid class given to the highlighted (current) state."""

_CURRENT_STATE_STYLE = "fill:#40E0D0,stroke:#333,stroke-width:3px,font-weight:bold"

STATE_MEANINGS: dict[str, str] = {
    MembershipState.ACTIVE.value: "the guest can use the organization",
    MembershipState.LEAVE_PENDING.value: "the leave was accepted; a worker is carrying it out",
    MembershipState.SOFT_DELETED.value: "hidden, restorable until `purge_due_at`",
    MembershipState.RESTORED.value: "restored by an admin; behaves like `active`",
    MembershipState.PURGE_PENDING.value: "irrevocable; data removal in progress",
    MembershipState.PURGED.value: "tombstone only",
}
"""What each stored state value means (docs/domain.md, "Who and what")."""

FIRED_BY: dict[str, str] = {
    "request_leave": "member",
    "complete_leave": "worker",
    "remove": "admin",
    "restore": "admin",
    "purge": "admin",
    "expire_retention": "worker",
    "finish_removal": "worker",
}
"""Who fires each event: the member, an organization admin, or a worker."""

GUARD_WORDS: dict[str, str] = {
    "is_collaboration": "B2B collaboration",
    "!is_collaboration": "B2B direct connect",
    "!is_home": "not a home membership",
}
"""Guards as the diagram renderers spell them, in the words of the domain."""

_UNGUARDED = "any kind"


class GraphvizMissing(RuntimeError):
    """SVG was asked for but Graphviz's ``dot`` program is not on ``PATH``."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(
            message
            or (
                "Graphviz is not installed: install the 'graphviz' package "
                "(apt-get install graphviz) to render SVG; use --format mermaid or md otherwise"
            )
        )


class PydotMissing(GraphvizMissing):
    """SVG was asked for but ``pydot`` (python-statemachine's diagram extra) is missing.

    A :class:`GraphvizMissing`, so callers handle both the same way.
    """

    def __init__(self) -> None:
        super().__init__(
            "pydot is not installed: install 'python-statemachine[diagrams]' "
            "(pip install pydot) to render SVG; use --format mermaid or md otherwise"
        )


def _state_by_value(value: str) -> State:
    for state in MembershipLifecycle.states:
        if state.value == value:
            return state
    known = ", ".join(s.value for s in MembershipLifecycle.states)
    raise ValueError(f"unknown membership state {value!r}; expected one of: {known}")


def mermaid(highlight: str | None = None) -> str:
    """The Mermaid ``stateDiagram-v2`` source of the lifecycle.

    ``highlight`` is a stored state value (for example ``"soft-deleted"``): that
    state is styled as the current one with a ``classDef`` and a ``class`` line.
    An unknown value raises ``ValueError``.
    """
    source = formatter.render(MembershipLifecycle, "mermaid")
    if highlight is None:
        return source
    state = _state_by_value(highlight)
    return (
        source.rstrip("\n")
        + "\n\n"
        + f"    classDef {CURRENT_STATE_CLASS} {_CURRENT_STATE_STYLE}\n"
        + f"    class {state.id} {CURRENT_STATE_CLASS}\n"
    )


def _guard_words(guards: list[str]) -> str:
    if not guards:
        return _UNGUARDED
    try:
        return " and ".join(GUARD_WORDS[g] for g in guards)
    except KeyError as err:
        raise ValueError(
            f"guard {err.args[0]!r} has no wording in statemachines.docs.GUARD_WORDS"
        ) from None


def _transition_rows() -> list[tuple[str, str, str, str, str]]:
    """(from value, event id, guard words, to value, fired by), in declaration order."""
    rows: list[tuple[str, str, str, str, str]] = []
    for state in MembershipLifecycle.states:
        for transition in state.transitions:
            if transition.initial or transition.internal:
                continue
            guard = _guard_words([str(c) for c in transition.cond])
            for event in transition.events:
                event_id = str(event)
                if event_id not in FIRED_BY:
                    raise ValueError(
                        f"event {event_id!r} has no entry in statemachines.docs.FIRED_BY"
                    )
                for target in transition.targets:
                    rows.append(
                        (
                            f"`{transition.source.value}`",
                            f"`{event_id}`",
                            guard,
                            f"`{target.value}`",
                            FIRED_BY[event_id],
                        )
                    )
    return rows


def _markdown_table(headers: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> str:
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))

    def line(cells: tuple[str, ...]) -> str:
        return "| " + " | ".join(c.ljust(widths[i]) for i, c in enumerate(cells)) + " |"

    out = [line(headers), "| " + " | ".join("-" * w for w in widths) + " |"]
    out.extend(line(row) for row in rows)
    return "\n".join(out) + "\n"


def transition_table() -> str:
    """A Markdown table of every transition: from, event, guard, to, who fires it.

    States are their stored values; the guard names the membership kind the
    transition applies to ("any kind" when unguarded).
    """
    return _markdown_table(
        ("from", "event", "guard (membership kind)", "to", "fired by"),
        _transition_rows(),
    )


def _states_table() -> str:
    rows: list[tuple[str, ...]] = []
    for state in MembershipLifecycle.states:
        if state.value not in STATE_MEANINGS:
            raise ValueError(
                f"state {state.value!r} has no entry in statemachines.docs.STATE_MEANINGS"
            )
        notes = [n for n, flag in (("initial", state.initial), ("final", state.final)) if flag]
        name = state.name + (f" ({', '.join(notes)})" if notes else "")
        rows.append((name, f"`{state.value}`", STATE_MEANINGS[state.value]))
    return _markdown_table(("state", "stored value", "meaning"), rows)


def lifecycle_markdown() -> str:
    """The whole ``docs/lifecycle.md``: states, the Mermaid diagram, the transitions."""
    parts = [
        "# Membership lifecycle\n",
        f"> Generated from `MembershipLifecycle` (`statemachines/membership.py`) by\n"
        f"> `{GENERATE_COMMAND}`. Do not edit by hand: a test fails\n"
        f"> when this file no longer matches the machine.\n",
        "Every guest membership moves through one strict state machine. An event that\n"
        "is not listed below for the membership's current state is refused and\n"
        "changes nothing.\n",
        "## States\n",
        _states_table(),
        "## Diagram\n",
        "```mermaid\n" + mermaid() + "```\n",
        "## Transitions\n",
        "The guard is the membership kind: a B2B collaboration membership keeps a\n"
        "restorable soft-deleted period; a B2B direct connect membership goes straight\n"
        "to data removal; a home membership is managed by its home directory and is\n"
        "never left or removed.\n",
        transition_table(),
    ]
    return "\n".join(parts)


def svg() -> str:
    """The lifecycle diagram as SVG, rendered by Graphviz through python-statemachine.

    Raises :class:`GraphvizMissing` when ``dot`` is not on ``PATH`` and
    :class:`PydotMissing` (a ``GraphvizMissing``) when ``pydot`` is not installed.
    """
    if shutil.which("dot") is None:
        raise GraphvizMissing()
    try:
        drawn = formatter.render(MembershipLifecycle, "svg")
    except GraphvizNotFoundError as err:
        raise GraphvizMissing() from err
    except ModuleNotFoundError as err:
        if err.name == "pydot":
            raise PydotMissing() from err
        raise
    # The initial point and its cluster are named after Python object ids; without
    # them, the same machine draws the same file every time (web/static/lifecycle.svg).
    return _OBJECT_ID.sub("", drawn)


_OBJECT_ID = re.compile(r"_\d{6,}(?=\b|&#45;|_)")
