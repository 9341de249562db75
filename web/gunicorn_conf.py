"""gunicorn's settings for the web process (``gunicorn -c python:web.gunicorn_conf``, the
``web`` line of the ``Procfile``).

gunicorn reads this module in its master process, before it binds a socket or starts a
worker. Command-line options (``--bind``, ``--workers``) still apply.

- Settings are checked here, so a bad one (``SECRET_KEY`` missing, say) stops the web
  process with one line naming the variable and exit code 2, instead of every worker
  failing with a traceback.
- Logs: gunicorn's own lines and the app's go to stderr in ``LOG_FORMAT`` (JSON lines by
  default, ``text`` for development) through ``logconfig``; gunicorn's access log is off
  because the app writes one richer line per request (``web.access``).
- Metrics: prometheus_client's multiprocess mode. Each worker process writes its
  metric values to files in ``PROMETHEUS_MULTIPROC_DIR`` and ``GET /metrics`` on any
  worker adds them all up. The directory is the one given, or a fresh temporary one;
  it is emptied when gunicorn starts (old files would count twice) and a worker's
  live gauges are dropped when it exits. The variable must be set before
  prometheus_client is first imported (``web`` imports it only in ``create_app``).
- What concerns the whole server is reported once, here, not by every worker: a weak
  ``JWT_SECRET`` (``make run``'s development one). ``WEAK_SECRET_REPORTED`` in the
  environment the workers inherit tells ``create_app`` not to repeat it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from logconfig import gunicorn_logconfig
from web import check_environment
from web.auth import WEAK_SECRET_REPORTED, weak_secret_warning

MULTIPROCESS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"

_made_here = not os.environ.get(MULTIPROCESS_DIR_VARIABLE)
if _made_here:
    os.environ[MULTIPROCESS_DIR_VARIABLE] = tempfile.mkdtemp(prefix="lifecycle-metrics-")

_settings = check_environment()
logconfig_dict = gunicorn_logconfig()
accesslog = None


def on_starting(server: Any) -> None:
    warning = weak_secret_warning(_settings)
    if warning:
        server.log.warning(warning)
    os.environ[WEAK_SECRET_REPORTED] = "1"
    directory = Path(os.environ[MULTIPROCESS_DIR_VARIABLE])
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink()


def on_exit(server: Any) -> None:
    if _made_here:
        shutil.rmtree(os.environ[MULTIPROCESS_DIR_VARIABLE], ignore_errors=True)


def child_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
