"""The WSGI entry point: `gunicorn gateway.wsgi:app`."""

import warnings

# nameko's standalone RPC proxy imports eventlet, which announces its deprecation
warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")

from gateway import create_app  # noqa: E402 - after the filter, on purpose

app = create_app()
