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

from statemachines.docs import STATE_MEANINGS
from statemachines.membership import MembershipLifecycle

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


DIAGRAM_FILE = Path(__file__).resolve().parent.parent / "static" / "lifecycle.svg"


@lru_cache(maxsize=1)
def _plain_svg() -> str:
    """The committed SVG without highlight, read once per process."""
    drawn = DIAGRAM_FILE.read_text(encoding="utf-8")
    # Inline SVG needs neither the XML prolog nor the DOCTYPE; it scales to its box.
    drawn = drawn[drawn.index("<svg") :]
    size = re.compile(r'<svg width="[^"]*" height="[^"]*"')
    return size.sub('<svg class="lifecycle-svg"', drawn, count=1)


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
        StateStep(s.value, s.name, STATE_MEANINGS[s.value], s.value == current) for s in states
    )
    drawn = _plain_svg()
    label = f"The membership lifecycle; the current state is {current_state.name}."
    return LifecycleDiagram(
        svg=Markup(_highlighted(drawn, current_state.id, label)),
        steps=steps,
        current_name=current_state.name,
    )
