"""Documentation generated from the lifecycle machine (docs/lifecycle.md)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from statemachines import docs
from statemachines.membership import MembershipLifecycle

REPO_ROOT = Path(__file__).resolve().parents[2]
COMMITTED_DOC = REPO_ROOT / "docs" / "lifecycle.md"

STATE_IDS = {
    "active": "active",
    "leave-pending": "leave_pending",
    "soft-deleted": "soft_deleted",
    "restored": "restored",
    "purge-pending": "purge_pending",
    "purged": "purged",
}

GRAPHVIZ_MESSAGE = (
    "Graphviz is not installed: install the 'graphviz' package (apt-get install graphviz) "
    "to render SVG; use --format mermaid or md otherwise"
)

# The design's transitions as the table must show them: from, event, guard, to, fired by.
EXPECTED_TABLE_ROWS = {
    ("active", "request_leave", "not a home membership", "leave-pending", "member"),
    ("restored", "request_leave", "not a home membership", "leave-pending", "member"),
    ("leave-pending", "complete_leave", "B2B collaboration", "soft-deleted", "worker"),
    ("leave-pending", "complete_leave", "B2B direct connect", "purge-pending", "worker"),
    ("active", "remove", "B2B collaboration and not a home membership", "soft-deleted", "admin"),
    ("active", "remove", "B2B direct connect", "purge-pending", "admin"),
    ("restored", "remove", "B2B collaboration and not a home membership", "soft-deleted", "admin"),
    ("restored", "remove", "B2B direct connect", "purge-pending", "admin"),
    ("soft-deleted", "restore", "any kind", "restored", "admin"),
    ("soft-deleted", "purge", "any kind", "purge-pending", "admin"),
    ("soft-deleted", "expire_retention", "any kind", "purge-pending", "worker"),
    ("purge-pending", "finish_removal", "any kind", "purged", "worker"),
}


def _table_rows(markdown: str) -> list[tuple[str, ...]]:
    """Body rows of a Markdown table, cells stripped of padding and backticks."""
    lines = [line for line in markdown.splitlines() if line.startswith("|")]
    body = lines[2:]  # skip the header and the separator
    return [tuple(cell.strip().strip("`") for cell in line.strip("|").split("|")) for line in body]


def _class_lines(source: str) -> list[str]:
    return [line.strip() for line in source.splitlines() if line.strip().startswith("class ")]


def test_committed_lifecycle_doc_matches_the_machine():
    # Given the docs/lifecycle.md committed in the repository
    assert COMMITTED_DOC.exists(), (
        "docs/lifecycle.md is missing: run `make docs` or "
        "`lifecycle diagram --format md -o docs/lifecycle.md`"
    )
    committed = COMMITTED_DOC.read_text(encoding="utf-8")
    # When the document is generated from the machine class now
    generated = docs.lifecycle_markdown()
    # Then they are identical
    assert committed == generated, (
        "docs/lifecycle.md is stale (the lifecycle machine changed): run `make docs` or "
        "`lifecycle diagram --format md -o docs/lifecycle.md` and commit the result"
    )


def test_lifecycle_doc_is_deterministic():
    # Given the generator
    # When it runs twice
    # Then it writes the same text
    assert docs.lifecycle_markdown() == docs.lifecycle_markdown()


def test_lifecycle_doc_says_how_it_is_generated_and_not_to_edit_it():
    # Given the generated document
    text = docs.lifecycle_markdown()
    # When its head is read
    head = "\n".join(text.splitlines()[:6])
    # Then it has a title, names the generating command and forbids hand edits
    assert text.startswith("# ")
    assert "lifecycle diagram --format md -o docs/lifecycle.md" in head
    assert "Do not edit by hand" in head


def test_lifecycle_doc_lists_every_state_with_its_stored_value_and_meaning():
    # Given the generated document
    text = docs.lifecycle_markdown()
    # When each state is looked up
    # Then its stored value and its meaning are on the same line
    for value, meaning in docs.STATE_MEANINGS.items():
        lines = [line for line in text.splitlines() if f"`{value}`" in line and meaning in line]
        assert lines, f"no line documents {value!r} with its meaning"


def test_lifecycle_doc_embeds_the_mermaid_diagram_and_the_transition_table():
    # Given the generated document
    text = docs.lifecycle_markdown()
    # When its parts are looked for
    # Then the unhighlighted diagram sits in a mermaid block, followed by the table
    assert "```mermaid\n" + docs.mermaid() + "```\n" in text
    assert text.endswith(docs.transition_table())


def test_every_state_has_a_documented_meaning():
    # Given the machine's states
    # When they are compared with the meanings kept for the docs
    # Then each stored value has exactly one meaning, and no meaning is orphaned
    assert set(docs.STATE_MEANINGS) == {s.value for s in MembershipLifecycle.states}


def test_every_event_has_a_documented_actor():
    # Given the machine's events
    # When they are compared with who fires them
    # Then each event has an actor among member, admin and worker
    assert set(docs.FIRED_BY) == {e.id for e in MembershipLifecycle.events}
    assert set(docs.FIRED_BY.values()) <= {"member", "admin", "worker"}


def test_transition_table_shows_exactly_the_designed_transitions():
    # Given the transition table
    table = docs.transition_table()
    # When its rows are parsed
    rows = _table_rows(table)
    # Then they are the design's transitions, each once, with guards in words
    assert len(rows) == len(set(rows))
    assert set(rows) == EXPECTED_TABLE_ROWS


def test_transition_table_has_the_documented_columns():
    # Given the transition table
    header = docs.transition_table().splitlines()[0]
    # When its header is read
    cells = [c.strip() for c in header.strip("|").split("|")]
    # Then the columns are from, event, guard, to, fired by
    assert cells == ["from", "event", "guard (membership kind)", "to", "fired by"]


def test_mermaid_names_all_six_states():
    # Given the Mermaid source
    source = docs.mermaid()
    # When it is read
    # Then it is a state diagram naming each state, starting at active and ending at purged
    assert source.startswith("stateDiagram-v2\n")
    for state in MembershipLifecycle.states:
        assert f'state "{state.name}" as {state.id}' in source
    assert "[*] --> active" in source
    assert "purged --> [*]" in source


def test_mermaid_without_highlight_styles_no_state():
    # Given no current state
    # When the diagram is generated
    source = docs.mermaid()
    # Then no state is styled as current
    assert "classDef" not in source
    assert _class_lines(source) == []
    assert ":::" not in source


@pytest.mark.parametrize("value", list(STATE_IDS))
def test_mermaid_highlight_marks_exactly_the_given_state(value):
    # Given a stored state value
    # When the diagram is generated with it highlighted
    source = docs.mermaid(highlight=value)
    # Then one class definition exists and exactly that state carries it
    assert source.count(f"classDef {docs.CURRENT_STATE_CLASS} ") == 1
    assert _class_lines(source) == [f"class {STATE_IDS[value]} {docs.CURRENT_STATE_CLASS}"]
    # And the rest of the diagram is the plain one
    assert source.startswith(docs.mermaid().rstrip("\n"))


def test_mermaid_highlight_of_an_unknown_state_is_refused():
    # Given a value that is not a stored state
    # When it is highlighted
    # Then a ValueError names it
    with pytest.raises(ValueError, match="deleted"):
        docs.mermaid(highlight="deleted")


def test_svg_without_graphviz_on_path_raises_graphviz_missing(monkeypatch, tmp_path):
    # Given a PATH on which no `dot` program can be found
    monkeypatch.setenv("PATH", str(tmp_path))
    # When SVG is asked for
    with pytest.raises(docs.GraphvizMissing) as caught:
        docs.svg()
    # Then the error says how to install Graphviz or which formats work without it
    assert str(caught.value) == GRAPHVIZ_MESSAGE
    assert isinstance(caught.value, RuntimeError)


def test_svg_raises_graphviz_missing_when_which_finds_no_dot(monkeypatch):
    # Given that shutil.which cannot find `dot`
    monkeypatch.setattr(shutil, "which", lambda name, *args, **kwargs: None)
    # When SVG is asked for
    # Then GraphvizMissing is raised with the install hint
    with pytest.raises(docs.GraphvizMissing, match="apt-get install graphviz"):
        docs.svg()


def test_svg_without_pydot_raises_a_graphviz_missing_that_names_pydot(monkeypatch):
    # Given `dot` on PATH but pydot not importable
    monkeypatch.setattr(shutil, "which", lambda name, *args, **kwargs: "/usr/bin/dot")
    monkeypatch.setitem(sys.modules, "pydot", None)
    monkeypatch.delitem(sys.modules, "statemachine.contrib.diagram.renderers.dot", raising=False)
    # When SVG is asked for
    with pytest.raises(docs.GraphvizMissing) as caught:
        docs.svg()
    # Then the error is the pydot one, handled like a missing Graphviz
    assert isinstance(caught.value, docs.PydotMissing)
    assert "pydot" in str(caught.value)


@pytest.mark.graphviz
def test_svg_with_graphviz_renders_an_svg_document():
    # Given Graphviz and pydot installed
    # When SVG is asked for
    text = docs.svg()
    # Then an SVG document comes back
    assert text.startswith("<?xml") or "<svg" in text
    assert "</svg>" in text


COMMITTED_SVG = REPO_ROOT / "web" / "static" / "lifecycle.svg"
_EDGE = re.compile(
    r'<g id="edge\d+" class="edge">\s*<title>([^<]+)&#45;&gt;([^<]+)</title>(.*?)</g>', re.S
)
_EDGE_LABEL = re.compile(r'font-size="9.00">([^<]+)<')
_NODE_TITLE = re.compile(r'<g id="node\d+" class="node">\s*<title>([^<]+)</title>')


def _drawn_transitions(drawn: str) -> Counter[tuple[str, str, str]]:
    """(source id, target id, event label) of every arrow in a Graphviz SVG."""
    found: Counter[tuple[str, str, str]] = Counter()
    for source, target, body in _EDGE.findall(drawn):
        labels = _EDGE_LABEL.findall(body)
        found[(source, target, labels[0] if labels else "")] += 1
    return found


def test_committed_svg_draws_every_state_and_transition_of_the_machine():
    # Given the diagram the pages inline (web/static/lifecycle.svg, written by `make docs`)
    drawn = COMMITTED_SVG.read_text(encoding="utf-8")
    # Then it has a box for each state and an arrow for each transition, labelled with
    # its event, and nothing else: regenerate it with `make docs` when the machine changes
    assert set(_NODE_TITLE.findall(drawn)) == {"__initial"} | set(STATE_IDS.values())
    expected: Counter[tuple[str, str, str]] = Counter({("__initial", "active", ""): 1})
    for state in MembershipLifecycle.states:
        for transition in state.transitions:
            label = str(transition.event).replace("_", " ").capitalize()
            expected[(transition.source.id, transition.target.id, label)] += 1
    assert _drawn_transitions(drawn) == expected


@pytest.mark.graphviz
def test_committed_svg_is_what_the_machine_draws_now():
    # Given Graphviz here (its version may differ from the one that drew the file)
    # When the machine is drawn again
    fresh = docs.svg()
    # Then the same boxes and arrows come out, and the drawing is deterministic
    committed = COMMITTED_SVG.read_text(encoding="utf-8")
    assert set(_NODE_TITLE.findall(fresh)) == set(_NODE_TITLE.findall(committed))
    assert _drawn_transitions(fresh) == _drawn_transitions(committed)
    assert docs.svg() == fresh


def test_docs_module_imports_no_framework():
    # Given a fresh interpreter
    code = (
        "import sys, statemachines.docs\n"
        "bad = [m for m in ('flask', 'sqlalchemy', 'dramatiq') if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    # When only statemachines.docs is imported
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    # Then no web, database or queue framework was loaded
    assert result.stdout.strip() == ""
