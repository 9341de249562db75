"""The dependency rule of docs/ARCHITECTURE.md ("Layers"), checked by import-linter
against the real code.

``statemachines`` imports nothing of ours; ``store`` may import ``statemachines``;
``memberships`` uses ``store`` and ``statemachines`` (the store only through the
repositories of the unit of work: no SQL); ``workers`` and ``web`` call
``memberships``; ``cli`` is on top. The second test proves the contracts are not
vacuous: a copy of the code with forbidden imports added must break them.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
PACKAGES = ("statemachines", "memberships", "store", "web", "workers", "cli")
CONTRACTS = (
    "statemachines is pure",
    "layers",
    "use cases know no framework edge",
    "the rules read no configuration",
    "web only sends messages and reads the queues",
    "use cases run no SQL",
)


def _lint_imports(project: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-logo", "--no-cache"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": str(LINT_IMPORTS.parent), "PYTHONPATH": str(project)},
    )


def test_import_contracts_declare_the_dependency_rule() -> None:
    # Given the project's import-linter configuration
    config = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    # Then it covers every package, sees third-party packages, and layers them as designed
    assert set(config["root_packages"]) == set(PACKAGES)
    assert config["include_external_packages"] is True
    contracts = {c["name"]: c for c in config["contracts"]}
    assert set(CONTRACTS) <= set(contracts)
    assert contracts["layers"]["layers"] == [
        "cli",
        "web",
        "workers",
        "memberships",
        "store",
        "statemachines",
    ]


def test_the_code_keeps_every_import_contract() -> None:
    # Given the code as it is
    # When import-linter checks it
    result = _lint_imports(REPO_ROOT)
    # Then every contract is kept
    assert result.returncode == 0, result.stdout + result.stderr
    for name in CONTRACTS:
        assert f"{name} KEPT" in result.stdout


def test_a_forbidden_import_breaks_the_contracts(tmp_path: Path) -> None:
    # Given a copy of the code where the pure machine imports SQLAlchemy and the store
    # imports the use cases above it
    for package in PACKAGES:
        shutil.copytree(
            REPO_ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(REPO_ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    (tmp_path / "settings.py").write_text("")
    (tmp_path / "statemachines" / "leak.py").write_text("import sqlalchemy\n")
    (tmp_path / "store" / "leak.py").write_text("import memberships.errors\nimport settings\n")
    # and the web edge runs a worker's task itself, and a use case builds a statement
    (tmp_path / "web" / "leak.py").write_text("import workers.tasks\n")
    (tmp_path / "memberships" / "leak.py").write_text("from sqlalchemy import select\n")
    # When import-linter checks the copy
    result = _lint_imports(tmp_path)
    # Then it fails and names each broken contract
    assert result.returncode != 0
    assert "statemachines is pure BROKEN" in result.stdout
    assert "layers BROKEN" in result.stdout
    assert "the rules read no configuration BROKEN" in result.stdout
    assert "web only sends messages and reads the queues BROKEN" in result.stdout
    assert "use cases run no SQL BROKEN" in result.stdout


def test_the_use_cases_reach_the_database_only_through_repositories() -> None:
    # Given every use case module
    modules = sorted((REPO_ROOT / "memberships").glob("*.py"))
    # Then none opens the unit of work's session, nor asks which database it runs on:
    # those are the store's (an import contract cannot see an attribute)
    offending = [
        f"{path.name}:{n}: {line.strip()}"
        for path in modules
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"\.session\b|\bis_postgresql\b", line)
    ]
    assert modules and offending == []


def test_every_package_is_installed_with_the_project() -> None:
    # Given the packages pyproject.toml installs (a wheel carries only those)
    listed = set(
        tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    # Then every package of the project's code is among them, subpackages included
    found = {
        ".".join(init.parent.relative_to(REPO_ROOT).parts)
        for package in PACKAGES
        for init in (REPO_ROOT / package).rglob("__init__.py")
        if "__pycache__" not in init.parts
    }
    assert found == listed
