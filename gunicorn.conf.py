"""gunicorn's settings: read from the working directory by the Procfile's ``web`` line.

Each worker builds its own app (``web:create_app()``), so whatever ``create_app``
reports at start-up would be printed once per worker. What concerns the whole server
is reported here instead, once, by the master process before it starts the workers.
"""

from __future__ import annotations

import os
from typing import Any


def on_starting(server: Any) -> None:
    """Report a weak ``JWT_SECRET`` once for the server, not once per worker."""
    from settings import Settings, SettingsError
    from web.auth import WEAK_SECRET_REPORTED, weak_secret_warning

    try:
        settings = Settings.from_env()
    except SettingsError:
        return  # each worker fails with the reason, as without this file
    warning = weak_secret_warning(settings)
    if warning:
        server.log.warning(warning)
    os.environ[WEAK_SECRET_REPORTED] = "1"
