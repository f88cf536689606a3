"""The `overdracht` command: operator tasks on a running platform."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from datetime import date
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from overdracht import config
from overdracht.contracts import ROLES, OverdrachtError, sign_system_token
from overdracht.db import make_engine, outbox_rows


def _auth_session() -> tuple[sa.Engine, Session]:
    engine = make_engine(config.database_url("auth"), poolclass=sa.pool.NullPool)
    return engine, Session(engine)


def add_provider(data: dict[str, Any], actor: dict[str, Any]) -> dict[str, Any]:
    """Register a provider in auth's database; its event leaves through auth's outbox."""
    from services.auth.accounts import register
    from services.auth.models import Outbox

    engine, session = _auth_session()
    try:
        with session.begin():
            provider, event = register(session, data, actor)
            session.execute(sa.insert(Outbox), outbox_rows([event]))
            return {"id": str(provider.id), **provider.profile()}
    finally:
        session.close()
        engine.dispose()


def _provider_add(args: argparse.Namespace) -> int:
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("Wachtwoord: ")
    data = {
        "username": args.username,
        "full_name": args.full_name,
        "email": args.email,
        "phone": args.phone,
        "region": args.region,
        "role": args.role,
        "profession": args.profession,
        "password": password,
    }
    created = add_provider(data, {"type": "operator", "via": "cli"})
    print(json.dumps(created, indent=2, ensure_ascii=False))
    return 0


def _rpc(service: str, method: str, *args: Any) -> Any:
    """Call a service as the operator: the CLI's broker user, the operator's signed token."""
    from nameko.standalone.rpc import ClusterRpcProxy

    from overdracht.bus import adapt_nameko, standalone_replies
    from overdracht.identity import OPERATOR

    adapt_nameko()
    token = sign_system_token(OPERATOR, config.private_key(OPERATOR), call=f"{service}.{method}")
    timeout = float(config.get("OVERDRACHT_RPC_TIMEOUT")) * 20
    replies = standalone_replies("cli")
    with ClusterRpcProxy(
        config.nameko_config("cli"), timeout=timeout, reply_listener_cls=replies
    ) as rpc:
        return getattr(getattr(rpc, service), method)(token, *args)


def _provider_unlock(args: argparse.Namespace) -> int:
    """End a lock now (the helpdesk, once it knows she is who she says); auth audits it."""
    result = _rpc("auth", "unlock", args.username)
    print(json.dumps(result, indent=2, ensure_ascii=False))
    return 0


def _retention_sweep(args: argparse.Namespace) -> int:
    if args.as_of is not None:
        if config.is_production():
            print("--as-of is in productie niet toegestaan.", file=sys.stderr)
            return 2
        date.fromisoformat(args.as_of)
    result = _rpc("retention", "sweep", args.as_of)
    print(json.dumps(result, indent=2))
    if result.get("failed"):  # the rest was done; the next sweep tries these again
        print(f"fout: niet gelukt: {', '.join(result['failed'])}", file=sys.stderr)
        return 1
    return 0


def _audit_verify(args: argparse.Namespace) -> int:
    from services.audit.checkpoints import file_store, verify_against
    from services.audit.models import RejectedEvent

    try:
        public_key = config.public_key("audit_checkpoint")
    except RuntimeError as exc:  # unset: without it no checkpoint can be trusted
        print(f"fout: {exc}", file=sys.stderr)
        return 2
    engine = make_engine(config.database_url("audit"), poolclass=sa.pool.NullPool)
    try:
        with Session(engine) as session:
            result = verify_against(session, file_store(), public_key)
            # events audit refused to store (forged, malformed, oversized): not a broken
            # chain, but what an investigation starts from
            result["parked"] = dict(
                session.execute(
                    sa.select(RejectedEvent.source, sa.func.count()).group_by(RejectedEvent.source)
                ).all()
            )
    except OSError as exc:
        print(f"fout: de checkpoints zijn niet te lezen: {exc}", file=sys.stderr)
        return 2
    finally:
        engine.dispose()
    print(json.dumps(result, indent=2, ensure_ascii=False))
    return 0 if result["ok"] else 1


def _migrate(args: argparse.Namespace) -> int:
    from ops.provision import SERVICES_WITH_DATABASE, migrate

    for service in SERVICES_WITH_DATABASE:
        migrate(service)
        print(f"{service}: up to date")
    return 0


def _bus_definitions(args: argparse.Namespace) -> int:
    from overdracht.bus import configured_uris, definitions

    print(json.dumps(definitions(configured_uris()), indent=2))
    return 0


def _db_setup_sql(args: argparse.Namespace) -> int:
    from ops.provision import setup_sql

    print(
        setup_sql(
            config.database_url(args.service),
            config.database_owner_url(args.service),
            config.get("OVERDRACHT_POSTGRES_ADMIN_URL"),
        )
    )
    return 0


def _keys_rotate(args: argparse.Namespace) -> int:
    """Re-wrap every document's data key under the current master key (documents' database)."""
    from services.documents.crypto import MasterKeys, MissingMasterKey, rewrap_all

    unchanged = "er is niets gewijzigd"
    try:
        keys = MasterKeys.from_config()
    except MissingMasterKey:
        print(
            "fout: de huidige hoofdsleutel (OVERDRACHT_MASTER_KEY_ID) staat niet in "
            f"OVERDRACHT_MASTER_KEYS; {unchanged}.",
            file=sys.stderr,
        )
        return 2
    except (RuntimeError, ValueError) as exc:
        print(f"fout: {exc}; {unchanged}.", file=sys.stderr)
        return 2
    engine = make_engine(config.database_url("documents"), poolclass=sa.pool.NullPool)
    try:
        result = rewrap_all(engine, keys, args.batch_size)
    except MissingMasterKey as exc:
        print(
            f"fout: er zijn documenten versleuteld onder hoofdsleutel {', '.join(exc.key_ids)}, "
            f"die niet in OVERDRACHT_MASTER_KEYS staat; {unchanged}.",
            file=sys.stderr,
        )
        return 2
    finally:
        engine.dispose()
    print(json.dumps(result, indent=2))
    return 1 if result["failed"] else 0


def _keys_new(args: argparse.Namespace) -> int:
    """Print the two settings with a fresh master key added to the configured ones, current."""
    from services.documents.crypto import KEY_ID, master_key_settings, new_master_keyset

    if not KEY_ID.fullmatch(args.key_id):
        print("fout: een sleutel-id is 1 tot 64 tekens: A-Z, a-z, 0-9, . _ -", file=sys.stderr)
        return 2
    try:
        _, keysets = config.master_keys()
    except RuntimeError:  # none configured yet
        keysets = {}
    if args.key_id in keysets:
        print(f"fout: hoofdsleutel {args.key_id} bestaat al.", file=sys.stderr)
        return 2
    settings = master_key_settings({**keysets, args.key_id: new_master_keyset()}, args.key_id)
    print("".join(f"{name}={value}\n" for name, value in settings.items()), end="")
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="overdracht", description=__doc__)
    areas = top.add_subparsers(dest="area", required=True)

    provider = areas.add_parser("provider", help="care providers and other accounts")
    provider_cmds = provider.add_subparsers(dest="command", required=True)
    add = provider_cmds.add_parser("add", help="register an account")
    add.add_argument("--username", required=True)
    add.add_argument("--full-name", required=True)
    add.add_argument("--email", required=True)
    add.add_argument("--phone", required=True, help="mobile number that receives the SMS code")
    add.add_argument("--region", required=True)
    add.add_argument("--role", required=True, choices=ROLES)
    add.add_argument("--profession", help="verloskundige, gynaecoloog, kraamverzorgende, ...")
    add.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    add.set_defaults(run=_provider_add)
    unlock = provider_cmds.add_parser(
        "unlock", help="end an account's lock and reset its failed logins (audited)"
    )
    unlock.add_argument("username", metavar="USERNAME")
    unlock.set_defaults(run=_provider_unlock)

    retention = areas.add_parser("retention", help="removal of expired documents and clients")
    retention_cmds = retention.add_subparsers(dest="command", required=True)
    sweep = retention_cmds.add_parser("sweep", help="remove what is due now (or on --as-of)")
    sweep.add_argument("--as-of", help="YYYY-MM-DD; refused in production")
    sweep.set_defaults(run=_retention_sweep)

    audit = areas.add_parser("audit", help="the audit log")
    audit_cmds = audit.add_subparsers(dest="command", required=True)
    verify = audit_cmds.add_parser(
        "verify", help="check the hash chain against the signed checkpoints; count parked events"
    )
    verify.set_defaults(run=_audit_verify)

    migrate = areas.add_parser("migrate", help="migrate every database (as its owner role)")
    migrate.set_defaults(run=_migrate)

    bus = areas.add_parser("bus", help="the message bus")
    bus_cmds = bus.add_subparsers(dest="command", required=True)
    defs = bus_cmds.add_parser(
        "definitions",
        help="RabbitMQ definitions (vhost, users, permissions, topology) for the configured URIs",
    )
    defs.set_defaults(run=_bus_definitions)

    db = areas.add_parser("db", help="the databases")
    db_cmds = db.add_subparsers(dest="command", required=True)
    setup = db_cmds.add_parser(
        "setup-sql", help="SQL that creates a service's roles and database (review, then run)"
    )
    setup.add_argument("service", choices=("auth", "clients", "documents", "audit"))
    setup.set_defaults(run=_db_setup_sql)

    keys = areas.add_parser("keys", help="the master keys that wrap documents' data keys")
    keys_cmds = keys.add_subparsers(dest="command", required=True)
    rotate = keys_cmds.add_parser(
        "rotate", help="re-wrap every data key under OVERDRACHT_MASTER_KEY_ID (idempotent)"
    )
    rotate.add_argument("--batch-size", type=int, default=200, help="documents per transaction")
    rotate.set_defaults(run=_keys_rotate)
    new = keys_cmds.add_parser(
        "new", help="print the master key settings with a fresh key KEY_ID added, as current"
    )
    new.add_argument("key_id", metavar="KEY_ID")
    new.set_defaults(run=_keys_new)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.run(args)
    except OverdrachtError as exc:
        print(f"fout: {exc.message}", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"fout: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
