"""The security tests reuse the HTTP fixtures of ``tests/e2e`` (app, client, ``api``) and
add a ``visitor`` of the pages with the development sign-in."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

E2E = Path(__file__).resolve().parent.parent / "e2e"
if str(E2E) not in sys.path:
    sys.path.insert(0, str(E2E))

_spec = importlib.util.spec_from_file_location("e2e_fixtures", E2E / "conftest.py")
assert _spec is not None and _spec.loader is not None
_e2e = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_e2e)

# Fixtures are found by name in this module.
redis_url = _e2e.redis_url
settings = _e2e.settings
rate_limit_prefix = _e2e.rate_limit_prefix
make_app = _e2e.make_app
app = _e2e.app
client = _e2e.client
api = _e2e.api
anonymous = _e2e.anonymous


@pytest.fixture
def visitor(make_app: Callable[..., Any]) -> Any:
    """A browser-like visitor of the pages, with the development sign-in switched on."""
    from pages_helpers import Visitor

    return Visitor(make_app(pages=True, dev_sign_in=True).test_client())
