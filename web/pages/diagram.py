"""The lifecycle diagram on the membership page, with the current state highlighted.

The picture is ``web/static/lifecycle.svg``: drawn from the machine class by Graphviz
(``statemachines.docs.svg``) when ``make docs`` runs, committed, and checked against
the machine by the tests, so the web process needs no Graphviz. It is inlined with the
current state marked, so the page loads nothing from elsewhere and needs no script.
The Mermaid library would draw in the browser instead, but it is megabytes of script to
vendor for one picture. Below it, an ordered list of the states with the current one
marked is the picture's text equivalent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from markupsafe import Markup

from statemachines.docs import GUARD_WORDS
from statemachines.membership import MembershipLifecycle, MembershipState

_NODE = re.compile(r'<g id="(node\d+)" class="node">\s*<title>([^<]+)</title>')


@dataclass(frozen=True, slots=True)
class StateStep:
    value: str
    name: str
    meaning: str
    current: bool


@dataclass(frozen=True, slots=True)
class LifecycleDiagram:
    svg: Markup
    steps: tuple[StateStep, ...]
    current_name: str


# What each state means, in the words of an admin reading the page (the developer's
# version, with field names, is in docs/lifecycle.md).
PAGE_MEANINGS: dict[str, str] = {
    MembershipState.ACTIVE.value: "the guest can use the organization",
    MembershipState.LEAVE_PENDING.value: "the guest asked to leave; the service is carrying it out",
    MembershipState.SOFT_DELETED.value: (
        "in Deleted users: hidden, and an admin can restore it until the retention period ends"
    ),
    MembershipState.RESTORED.value: "restored by an admin; the guest can use it again",
    MembershipState.PURGE_PENDING.value: (
        "permanently deleted: can no longer be restored; the guest's data is being removed"
    ),
    MembershipState.PURGED.value: (
        "the guest's data is removed; only this record of dates and states is kept"
    ),
}

_GUARD = re.compile(r">\[(!?\w+)\]<")
_GRAPH_CAPTION = re.compile(r"<text [^>]*>MembershipLifecycle</text>\s*")

DIAGRAM_FILE = Path(__file__).resolve().parent.parent / "static" / "lifecycle.svg"


@lru_cache(maxsize=1)
def _plain_svg() -> str:
    """The committed SVG without highlight, read once per process."""
    drawn = DIAGRAM_FILE.read_text(encoding="utf-8")
    # Inline SVG needs neither the XML prolog nor the DOCTYPE; it scales to its box.
    drawn = drawn[drawn.index("<svg") :]
    size = re.compile(r'<svg width="[^"]*" height="[^"]*"')
    drawn = size.sub('<svg class="lifecycle-svg"', drawn, count=1)
    # People's words on the picture: guards as the kinds they stand for, no class name.
    drawn = _GUARD.sub(lambda m: f">({GUARD_WORDS.get(m.group(1), m.group(1))})<", drawn)
    drawn = _GRAPH_CAPTION.sub("", drawn)
    return drawn.replace(
        "<title>MembershipLifecycle</title>", "<title>Membership lifecycle</title>"
    )


def _highlighted(drawn: str, state_id: str, label: str) -> str:
    def mark(match: re.Match[str]) -> str:
        node_id, title = match.group(1), match.group(2)
        css = "node current" if title == state_id else "node"
        return f'<g id="{node_id}" class="{css}">\n<title>{title}</title>'

    drawn = _NODE.sub(mark, drawn)
    return drawn.replace(
        '<svg class="lifecycle-svg"',
        f'<svg class="lifecycle-svg" role="img" aria-label="{Markup.escape(label)}"',
        1,
    )


def lifecycle_diagram(current: str) -> LifecycleDiagram:
    """The diagram for a membership in stored state ``current``."""
    states = list(MembershipLifecycle.states)
    by_value = {s.value: s for s in states}
    current_state = by_value[current]
    steps = tuple(
        StateStep(s.value, s.name, PAGE_MEANINGS[s.value], s.value == current) for s in states
    )
    drawn = _plain_svg()
    label = f"The membership lifecycle; the current state is {current_state.name}."
    return LifecycleDiagram(
        svg=Markup(_highlighted(drawn, current_state.id, label)),
        steps=steps,
        current_name=current_state.name,
    )
