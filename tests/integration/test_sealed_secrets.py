"""Auth's authenticator secrets at rest: sealed by migration 0005, and sealed again under a
new primary key by `overdracht keys auth-reseal`, on a throw-away auth database."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pyotp
import pytest
import sqlalchemy as sa
from alembic import command

from ops import provision
from overdracht import config, db
from services.auth.sealing import (
    CONFIRMED,
    PENDING,
    SETTING,
    SealBroken,
    Sealer,
    new_keyset,
    reseal_all,
)
from tests.integration.conftest import POSTGRES


@pytest.fixture
def auth_database(monkeypatch, tmp_path) -> Iterator[tuple[str, sa.Engine]]:
    """A throw-away auth database at revision 0004 (secrets kept as they were typed)."""
    url = f"{POSTGRES}overdracht_it_auth_{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("OVERDRACHT_ENV_FILE", str(tmp_path / "no-env-file"))
    monkeypatch.delenv(SETTING, raising=False)
    config._file_values.cache_clear()
    engine = None
    try:
        provision.create_database(url)
        command.upgrade(provision.alembic_config("auth", url), "0004")
        engine = db.make_engine(url, poolclass=sa.pool.NullPool)
        yield url, engine
    finally:
        if engine is not None:
            engine.dispose()
        provision.drop_database(url)
        config._file_values.cache_clear()


def _provider(engine: sa.Engine, secret: str | None, pending: str | None) -> uuid.UUID:
    provider_id = uuid.uuid4()
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO providers (id, username, full_name, email, phone, region, role,"
                " failed_logins, lock_count, created_at, totp_secret, totp_pending)"
                " VALUES (:id, :username, 'Anna de Vries', 'anna@example.org', '+31612345678',"
                " 'Regio Noord', 'zorgverlener', 0, 0, now(), :secret, :pending)"
            ),
            {"id": provider_id, "username": provider_id.hex, "secret": secret, "pending": pending},
        )
    return provider_id


def _secrets(engine: sa.Engine, provider_id: uuid.UUID) -> tuple[str | None, str | None]:
    with engine.connect() as connection:
        return connection.execute(
            sa.text("SELECT totp_secret, totp_pending FROM providers WHERE id = :id"),
            {"id": provider_id},
        ).one()


def _revision(engine: sa.Engine) -> str:
    with engine.connect() as connection:
        return connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()


def test_the_migration_seals_every_stored_secret_and_the_downgrade_opens_them(
    auth_database, monkeypatch
):
    url, engine = auth_database
    confirmed, pending = pyotp.random_base32(), pyotp.random_base32()
    both = _provider(engine, confirmed, pending)
    only_pending = _provider(engine, None, pending)
    keyset = new_keyset()
    monkeypatch.setenv(SETTING, keyset)

    command.upgrade(provision.alembic_config("auth", url), "0005")

    sealer = Sealer(keyset)
    sealed, sealed_pending = _secrets(engine, both)
    assert confirmed not in sealed and pending not in sealed_pending
    assert sealer.open(sealed, both, CONFIRMED) == confirmed
    assert sealer.open(sealed_pending, both, PENDING) == pending
    assert _secrets(engine, only_pending)[0] is None
    assert sealer.open(_secrets(engine, only_pending)[1], only_pending, PENDING) == pending
    # bound to her row and column: moved anywhere else, it does not open
    with pytest.raises(SealBroken):
        sealer.open(sealed, only_pending, CONFIRMED)
    with pytest.raises(SealBroken):
        sealer.open(sealed, both, PENDING)

    command.downgrade(provision.alembic_config("auth", url), "0004")
    assert _secrets(engine, both) == (confirmed, pending)


def test_without_the_keyset_the_migration_stops_and_changes_nothing(auth_database):
    url, engine = auth_database
    confirmed = pyotp.random_base32()
    provider_id = _provider(engine, confirmed, None)
    with pytest.raises(RuntimeError, match=SETTING):
        command.upgrade(provision.alembic_config("auth", url), "0005")
    assert _revision(engine) == "0004"
    assert _secrets(engine, provider_id) == (confirmed, None)


def test_an_empty_database_needs_no_keyset(auth_database):
    url, engine = auth_database
    command.upgrade(provision.alembic_config("auth", url), "head")
    assert _revision(engine) == "0005"


def test_reseal_moves_every_secret_to_the_new_primary_key_once(auth_database):
    url, engine = auth_database
    command.upgrade(provision.alembic_config("auth", url), "head")
    old = new_keyset()
    first = Sealer(old)
    secrets = {}
    for _ in range(5):
        secret = pyotp.random_base32()
        provider_id = _provider(engine, None, None)
        secrets[provider_id] = secret
        with engine.begin() as connection:
            connection.execute(
                sa.text("UPDATE providers SET totp_secret = :s WHERE id = :id"),
                {"s": first.seal(secret, provider_id, CONFIRMED), "id": provider_id},
            )
    # one altered by someone with a database login: reported, left as it is
    altered = next(iter(secrets))
    tampered = first.seal("AAAAAAAAAAAAAAAA", uuid.uuid4(), CONFIRMED)
    with engine.begin() as connection:
        connection.execute(
            sa.text("UPDATE providers SET totp_secret = :s WHERE id = :id"),
            {"s": tampered, "id": altered},
        )

    rotated = new_keyset(old)
    assert len(json.loads(rotated)["key"]) == 2
    second = Sealer(rotated)
    result = reseal_all(engine, second, batch_size=2)
    assert result == {"already_current": 0, "resealed": 4, "failed": [f"{altered} {CONFIRMED}"]}
    for provider_id, secret in secrets.items():
        sealed = _secrets(engine, provider_id)[0]
        if provider_id == altered:
            assert sealed == tampered
            continue
        assert second.is_current(sealed)
        # the new key alone opens it: the old one may leave the keyset
        alone = json.loads(rotated)
        alone["key"] = [k for k in alone["key"] if k["keyId"] == alone["primaryKeyId"]]
        assert Sealer(json.dumps(alone)).open(sealed, provider_id, CONFIRMED) == secret
        with pytest.raises(SealBroken):
            first.open(sealed, provider_id, CONFIRMED)

    again = reseal_all(engine, second)
    assert again["resealed"] == 0 and again["already_current"] == 4
