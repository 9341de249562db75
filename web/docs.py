"""``/docs``: Swagger UI 5 for ``/openapi.json``, served entirely from this service's origin.

The assets come from the ``swagger-ui-bundle-v2`` package (Swagger UI 5, which renders
OpenAPI 3.1; the older ``swagger-ui-bundle`` ships Swagger UI 4, which cannot), so the
page works on a machine without internet access and under a ``script-src 'self'``
policy: no CDN, no inline script (``web/static/docs.js`` starts the UI and reads the
document's URL from the page).
"""

from __future__ import annotations

from flask import Blueprint, Response, render_template, send_from_directory, url_for
from swagger_ui_bundle import swagger_ui_path
from werkzeug.exceptions import NotFound

DOCS_PATH = "/docs"
# Only what the page loads is served from the package.
ASSETS = frozenset(
    {
        "swagger-ui.css",
        "swagger-ui-bundle.js",
        "swagger-ui-standalone-preset.js",
        "favicon-32x32.png",
        "favicon-16x16.png",
    }
)

bp = Blueprint("docs", __name__, url_prefix=DOCS_PATH)
bp.enable_openapi = False  # type: ignore[attr-defined]  # a page, not an API operation


@bp.get("")
def index() -> str:
    return render_template("docs/index.html", spec_url=url_for("openapi.spec"))


@bp.get("/assets/<name>")
def asset(name: str) -> Response:
    if name not in ASSETS:
        raise NotFound()
    return send_from_directory(str(swagger_ui_path), name, max_age=86400)
