"""The gateway: web pages (Dutch, or English) and the JSON API, thin over the services."""

from __future__ import annotations

from typing import Any

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

import overdracht  # noqa: F401 - first, for its warning filter (gateway.rpc imports eventlet)
from gateway.cookie import SealedCookieSessionInterface
from gateway.rpc import RpcPool
from overdracht import config


def create_app(overrides: dict[str, Any] | None = None) -> Flask:
    """Build the gateway; settings come from the environment, overrides win."""
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=config.get("OVERDRACHT_SECRET_KEY"),
        NAMEKO=config.nameko_config("gateway"),
        CALLER_KEY=config.private_key("gateway"),
        RPC_TIMEOUT=float(config.get("OVERDRACHT_RPC_TIMEOUT")),
        RPC_POOL_SIZE=config.get_int("OVERDRACHT_RPC_POOL_SIZE"),
        DOCUMENTS_URL=config.get("OVERDRACHT_DOCUMENTS_URL").rstrip("/"),
        MAX_DOCUMENT_BYTES=config.get_int("OVERDRACHT_MAX_DOCUMENT_BYTES"),
        DOCUMENT_TYPES=config.document_types(),
        CONTENT_TYPES=sorted(config.content_types()),
        SECURE_COOKIES=config.is_production(),
        TRUSTED_PROXIES=config.get_int("OVERDRACHT_TRUSTED_PROXIES"),
        # Flask's own cookie (login challenge, messages, the visitor's CSRF value)
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_SECURE=config.is_production(),
        # every body but an upload's is small; uploads raise the cap for their own request
        MAX_CONTENT_LENGTH=64 * 1024,
        MAX_FORM_MEMORY_SIZE=64 * 1024,
    )
    app.config.update(overrides or {})
    app.session_interface = SealedCookieSessionInterface()
    if app.config["TRUSTED_PROXIES"]:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=app.config["TRUSTED_PROXIES"], x_proto=1)
    app.extensions["rpc"] = RpcPool(
        app.config["NAMEKO"], app.config["RPC_POOL_SIZE"], app.config["RPC_TIMEOUT"]
    )

    from gateway import api, errors, i18n, onboarding, pages

    i18n.init_app(app)

    app.register_blueprint(api.bp)
    app.register_blueprint(pages.bp)
    app.register_blueprint(onboarding.bp)
    errors.register(app)

    @app.after_request
    def security_headers(response):
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        response.headers.setdefault("Cache-Control", "no-store")
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; style-src 'self'; img-src 'self'; form-action 'self'; "
            "frame-ancestors 'none'",
        )
        return response

    return app
