"""Every state change goes through one writer, ``store/transitions.py`` (see
docs/ARCHITECTURE.md, "Where each rule lives"): no other code of the service updates
``memberships.state``, through the ORM, an UPDATE expression or SQL text."""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
# statemachines is left out: it reaches no database (an import contract), and its machine
# sets ``state`` on the model it is given.
PACKAGES = ("memberships", "store", "web", "workers", "cli")
WRITER = REPO_ROOT / "store" / "transitions.py"
# Migrations change the schema, not a membership's lifecycle.
MIGRATIONS = REPO_ROOT / "store" / "migrations"

SQL_UPDATE_OF_STATE = re.compile(r"UPDATE\s+memberships\b.*\bSET\b[^;]*\bstate\s*=", re.I | re.S)


def _service_modules() -> list[Path]:
    found: list[Path] = []
    for package in PACKAGES:
        for path in sorted((REPO_ROOT / package).rglob("*.py")):
            if MIGRATIONS not in path.parents:
                found.append(path)
    return found


def _writes_state(tree: ast.AST) -> list[int]:
    """Lines that assign ``<x>.state = …``, pass ``state=`` to ``.values(…)``, or hold SQL
    text that updates ``memberships.state``."""
    lines: list[int] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Attribute) and target.attr == "state":
                    lines.append(node.lineno)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "values"
            and any(k.arg == "state" for k in node.keywords)
        ) or (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and SQL_UPDATE_OF_STATE.search(node.value)
        ):
            lines.append(node.lineno)
    return lines


def test_the_writer_itself_is_found_by_the_check() -> None:
    # Given the one transition writer
    # When it is searched like every other module
    # Then its UPDATEs of the state are found (so the check below is not vacuous)
    assert _writes_state(ast.parse(WRITER.read_text()))


def test_no_other_module_updates_a_membership_state() -> None:
    # Given every module of the service but the writer and the migrations
    offenders = [
        f"{path.relative_to(REPO_ROOT)}:{line}"
        for path in _service_modules()
        if path != WRITER
        for line in _writes_state(ast.parse(path.read_text()))
    ]
    # Then none of them changes memberships.state
    assert offenders == []
