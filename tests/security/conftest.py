"""The security tests use the HTTP fixtures of ``tests/e2e`` (``make_app``, ``api``,
``client``, a real Redis): loaded from there, not copied, so both folders build apps alike.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

E2E = Path(__file__).resolve().parent.parent / "e2e"
if str(E2E) not in sys.path:
    sys.path.insert(0, str(E2E))  # the helpers the e2e fixtures import (api_helpers, ...)

_spec = importlib.util.spec_from_file_location("e2e_fixtures", E2E / "conftest.py")
assert _spec is not None and _spec.loader is not None
_e2e = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_e2e)

redis_url = _e2e.redis_url
settings = _e2e.settings
rate_limit_prefix = _e2e.rate_limit_prefix
make_app = _e2e.make_app
app = _e2e.app
client = _e2e.client
api = _e2e.api
anonymous = _e2e.anonymous


@pytest.fixture
def sqlite_only(sqlite_template: Path, tmp_path: Path) -> str:
    """An empty, migrated SQLite database: for modules whose rules do not depend on the
    backend, which override ``database_url`` with it."""
    path = tmp_path / "lifecycle.db"
    shutil.copyfile(sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def visitor(make_app: Callable[..., Any]) -> Any:
    """A browser-like visitor of the pages, with the development sign-in switched on."""
    from pages_helpers import Visitor

    return Visitor(make_app(pages=True, dev_sign_in=True).test_client())
