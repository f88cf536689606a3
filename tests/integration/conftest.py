"""Fixtures for integration tests against the machine's own PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from ops import provision
from overdracht import config, db

POSTGRES = "postgresql+psycopg2://postgres@127.0.0.1:5432/"


@pytest.fixture
def engine(monkeypatch, tmp_path) -> Iterator[sa.Engine]:
    """A throw-away audit database, migrated to head, dropped afterwards whatever happens."""
    url = f"{POSTGRES}overdracht_it_audit_{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("OVERDRACHT_ENV_FILE", str(tmp_path / "no-env-file"))
    monkeypatch.setenv("OVERDRACHT_AUDIT_DB", url)
    config._file_values.cache_clear()
    engine = None
    try:
        provision.create_database(url)
        provision.migrate("audit", url)
        engine = db.make_engine(url, poolclass=sa.pool.NullPool)
        yield engine
    finally:
        if engine is not None:
            engine.dispose()
        provision.drop_database(url)
        config._file_values.cache_clear()
