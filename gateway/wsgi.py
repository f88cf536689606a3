"""The WSGI entry point: `gunicorn gateway.wsgi:app`."""

import overdracht  # noqa: F401 - first, for its warning filter (nameko imports eventlet)
from gateway import create_app

app = create_app()
