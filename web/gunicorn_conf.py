"""gunicorn's configuration for the web process: ``gunicorn -c python:web.gunicorn_conf``.

gunicorn reads this module in its master process, before it binds a socket or starts a
worker; the settings are checked here, so a bad one (``SECRET_KEY`` missing, say) stops
the web process with one line naming the variable and exit code 2, instead of every
worker failing with a traceback. Command-line options (``--bind``, ``--workers``) still
apply.
"""

from web import check_environment

check_environment()
