"""Browser fixtures: the real app in a real HTTP server, driven by headless Chromium.

One server and one browser serve the whole session (starting Chromium is the slow
part); each test gets a fresh browser context, so cookies never leak between
tests. The server runs in a thread on a free port over a temporary SQLite database
seeded with the demo (``cli.demo.seed``); follow-up work is recorded, not sent, and
tests carry it out by calling the use cases themselves.

Chromium is Debian's (``/usr/bin/chromium``): ``playwright install`` cannot download
browsers here. Without it, the browser tests are skipped with how to enable them —
except where ``BROWSER_TESTS_REQUIRED`` is set (CI), where they fail.
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from werkzeug.serving import make_server

from cli.demo import seed
from memberships.clock import utc_now
from settings import PROJECT_ROOT, Settings
from store.database import make_engine, make_session_factory
from store.migrate import upgrade
from store.unit_of_work import RecordingDispatcher, UnitOfWork
from web import create_app

CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 375, "height": 812}
# Every page must fit these widths without scrolling sideways (tables scroll in their box).
WIDTHS_WITHOUT_SIDEWAYS_SCROLL = (320, 375, 1280, 1440)
# axe-core's impacts that fail a test; "moderate" and "minor" are reported, not failed.
FAILING_IMPACTS = ("serious", "critical")
# Set by .ci/run: there the browser tests must run, so a missing browser fails them.
REQUIRED_VARIABLE = "BROWSER_TESTS_REQUIRED"
SCREENSHOTS = PROJECT_ROOT / "var" / "screenshots"


@dataclass
class LiveServer:
    base_url: str
    uow: Callable[[], UnitOfWork]
    dispatcher: RecordingDispatcher
    app: Any

    def url(self, path: str) -> str:
        return self.base_url + path


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    database_url = f"sqlite:///{tmp_path_factory.mktemp('browser') / 'lifecycle.db'}"
    upgrade(database_url)
    engine = make_engine(database_url)
    session_factory = make_session_factory(engine)
    dispatcher = RecordingDispatcher()

    def uow() -> UnitOfWork:
        return UnitOfWork(session_factory, dispatcher)

    seed(uow, utc_now)
    settings = Settings(
        database_url=database_url,
        redis_url=os.environ.get("REDIS_URL", "").strip() or Settings().redis_url,
        jwt_secret="browser-test-secret-long-enough-for-hs256",
        dev_sign_in=True,
        rate_limits_enabled=False,
    )
    app = create_app(
        settings,
        session_factory=session_factory,
        dispatcher=dispatcher,
        rate_limit_key_prefix=f"browser-{uuid.uuid4().hex}",
    )
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
    thread.start()
    try:
        yield LiveServer(f"http://127.0.0.1:{server.server_port}", uow, dispatcher, app)
    finally:
        server.shutdown()
        thread.join(timeout=10)
        engine.dispose()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        why = (
            f"browser tests need Chromium at {CHROMIUM}: install it with "
            "`apt-get install chromium` (or set CHROMIUM_PATH), then run `make test` again"
        )
        if os.environ.get(REQUIRED_VARIABLE):
            pytest.fail(f"{REQUIRED_VARIABLE} is set and {why}", pytrace=False)
        pytest.skip(why)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any, live_server: LiveServer) -> Iterator[Any]:
    context = browser.new_context(base_url=live_server.base_url, viewport=DESKTOP)
    context.set_default_timeout(10_000)
    tab = context.new_page()
    try:
        yield tab
    finally:
        context.close()


@pytest.fixture(scope="session")
def axe() -> Any:
    """axe-core (shipped inside axe-playwright-python), run in the page under test."""
    from axe_playwright_python.sync_playwright import Axe

    return Axe()


def sideways_scroll(page: Any) -> int:
    """How many pixels the page itself is wider than the window (0: it fits)."""
    return int(
        page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    )


# Words a table cell breaks mid-word: more lines than the cell has words ("Soft deleted"
# drawn as "Soft / del / ete / d"). Cells of a table the page turns into cards, and ids
# and e-mails marked to wrap (``.wrap``, ``code``), may break; table headers and state
# badges may not (a table too wide for the window scrolls in its own box instead).
BROKEN_WORDS = """() => {
  const found = [];
  for (const cell of document.querySelectorAll('.table-scroll th, .table-scroll td')) {
    if (cell.closest('.table--cards') || cell.querySelector('.wrap, code')) continue;
    const words = cell.innerText.trim().split(/\\s+/).filter(Boolean).length;
    if (!words) continue;
    const tops = new Set();
    const texts = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
    for (let text = texts.nextNode(); text; text = texts.nextNode()) {
      const range = document.createRange();
      range.selectNodeContents(text);
      for (const rect of range.getClientRects()) {
        if (rect.width > 0) tops.add(Math.round(rect.top));
      }
    }
    if (tops.size > words) found.push(cell.innerText.trim().replace(/\\s+/g, ' '));
  }
  return found;
}"""

# What does not fit its box: a control out of the window's sides (outside a box that
# scrolls), or a card whose content spills over its edge.
OUT_OF_PLACE = """() => {
  const found = [];
  const width = document.documentElement.clientWidth;
  const apart = '.table-scroll, .diagram, .visually-hidden, .skip-link, dialog:not([open])';
  const scrolls = el => el.closest(apart);
  for (const el of document.querySelectorAll('a, button, input, select, textarea, label')) {
    const rect = el.getBoundingClientRect();
    if (!rect.width || scrolls(el)) continue;
    if (rect.left < -1 || rect.right > width + 1) {
      found.push(`${el.tagName.toLowerCase()} "${(el.innerText || el.name || '').trim()}" ` +
                 `at ${Math.round(rect.left)}..${Math.round(rect.right)} px`);
    }
  }
  for (const el of document.querySelectorAll('main *')) {
    if (scrolls(el) || getComputedStyle(el).display === 'inline') continue;
    if (el.scrollWidth > el.clientWidth + 1 && getComputedStyle(el).overflowX === 'visible') {
      const name = el.className ? `.${String(el.className).split(' ')[0]}` : '';
      found.push(`${el.tagName.toLowerCase()}${name} spills ${el.scrollWidth - el.clientWidth} px`);
    }
  }
  return found;
}"""


def check_layout(page: Any, name: str, width: int) -> None:
    """Nothing off the window's sides, nothing spilling out of its card, no word broken
    in a table (at narrow widths, where these go wrong)."""
    out_of_place = page.evaluate(OUT_OF_PLACE)
    assert not out_of_place, f"{name}: at {width} px these do not fit: {out_of_place}"
    broken = page.evaluate(BROKEN_WORDS)
    assert not broken, f"{name}: at {width} px these table cells break words: {broken}"


def check_accessibility(page: Any, axe: Any, path: Path, *, ours: bool = True) -> dict[str, Any]:
    """Run axe-core on the page as it is now; save its report as ``path`` (JSON); fail on
    a serious or critical violation, naming each with the elements it found. A page the
    service does not write (``ours=False``: Swagger UI's /docs) is reported only."""
    results = axe.run(page)
    report = results.response
    path.write_text(json.dumps(report, indent=2), encoding="utf-8")
    failing = [v for v in report["violations"] if ours and v.get("impact") in FAILING_IMPACTS]
    assert not failing, "axe-core found serious or critical violations (report: {}):\n{}".format(
        path,
        "\n".join(
            f"- {v['id']} ({v['impact']}): {v['help']} at "
            + ", ".join(str(n["target"]) for n in v["nodes"][:3])
            for v in failing
        ),
    )
    return report  # type: ignore[no-any-return]


def hold_still(page: Any) -> str | None:
    """Pause the page's own refresh (``data-refresh-seconds``, see pages.js) while it is
    measured, screenshotted and checked: on a busy machine that takes longer than the
    refresh interval. Returns the attribute's value, to put back afterwards. A refresh
    already under way is waited for."""
    for _ in range(3):
        page.wait_for_load_state()
        try:
            return page.evaluate(  # type: ignore[no-any-return]
                "() => { const s = document.body.getAttribute('data-refresh-seconds');"
                " document.body.removeAttribute('data-refresh-seconds'); return s; }"
            )
        except Exception as error:  # the page navigated under us: its refresh fired
            if "context was destroyed" not in str(error):
                raise
    raise AssertionError("the page kept reloading while it was being screenshotted")


@pytest.fixture
def screenshot(page: Any, axe: Any) -> Callable[..., Path]:
    """``screenshot("name")`` saves the page as it is now at desktop width
    (``var/screenshots/name.png``) and at phone width (``name-375.png``), each with its
    axe-core report beside it (``name.axe.json``, ``name-375.axe.json``), and checks
    that neither has a serious or critical accessibility violation (unless
    ``ours=False``: a third-party page such as Swagger UI) and that the page
    fits every width from 320 to 1440 px without scrolling sideways."""

    def save(name: str, *, ours: bool = True) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        desktop = page.viewport_size or DESKTOP
        refresh = hold_still(page)
        for width in WIDTHS_WITHOUT_SIDEWAYS_SCROLL:
            page.set_viewport_size({"width": width, "height": desktop["height"]})
            overflow = sideways_scroll(page)
            assert overflow <= 0, f"{name}: at {width} px the page is {overflow} px too wide"
            if width < DESKTOP["width"]:
                check_layout(page, name, width)
        shots = ((name, desktop), (f"{name}-375", PHONE))
        for shot, size in shots:
            page.set_viewport_size(size)
            page.screenshot(path=str(SCREENSHOTS / f"{shot}.png"), full_page=True)
            check_accessibility(page, axe, SCREENSHOTS / f"{shot}.axe.json", ours=ours)
        page.set_viewport_size(desktop)
        if refresh is not None:
            page.evaluate("s => document.body.setAttribute('data-refresh-seconds', s)", refresh)
        return SCREENSHOTS / f"{name}.png"

    return save
