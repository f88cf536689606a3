"""Fixtures the unit tests share."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask

from gateway import create_app
from ops import provision
from ops.platform import generate_secrets
from overdracht import config


@pytest.fixture
def app(monkeypatch, tmp_path) -> Iterator[Flask]:
    monkeypatch.setenv("OVERDRACHT_ENV_FILE", str(tmp_path / "no-env-file"))
    for name, value in {**generate_secrets(), **provision.generate("ovdunit")}.items():
        monkeypatch.setenv(name, value)  # nothing connects: the RPC pool starts empty
    config._file_values.cache_clear()
    app = create_app({"TESTING": True})
    try:
        yield app
    finally:
        app.extensions["rpc"].close()
        config._file_values.cache_clear()
