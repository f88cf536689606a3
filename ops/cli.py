"""The `overdracht` command: operator tasks on a running platform."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from overdracht import config
from overdracht.contracts import OPERATOR_ACTOR, ROLES, OverdrachtError, sign_system_token
from overdracht.db import make_engine, outbox_rows


@contextmanager
def _engine(url: str) -> Iterator[sa.Engine]:
    """One command's connection to a database: no pool kept, disposed at the end."""
    engine = make_engine(url, poolclass=sa.pool.NullPool)
    try:
        yield engine
    finally:
        engine.dispose()


def add_provider(data: dict[str, Any], actor: dict[str, Any]) -> dict[str, Any]:
    """Register a provider in auth's database; its event leaves through auth's outbox."""
    from services.auth.accounts import register
    from services.auth.models import Outbox

    with _engine(config.database_url("auth")) as engine, Session(engine) as session:
        with session.begin():
            provider, event = register(session, data, actor)
            session.execute(sa.insert(Outbox), outbox_rows([event]))
            return {"id": str(provider.id), **provider.profile()}


def _account_data(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "username": args.username,
        "full_name": args.full_name,
        "email": args.email,
        "phone": args.phone,
        "region": args.region,
        "role": args.role,
        "profession": args.profession,
        "organisation": args.organisation,
        "agb_code": args.agb_code,
    }


def _provider_add(args: argparse.Namespace) -> int:
    """An account with a password at once, for scripts; `invite` is the way for people."""
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("Wachtwoord: ")
    data = {**_account_data(args), "password": password}
    created = add_provider(data, OPERATOR_ACTOR)
    _print(created)
    return 0


def _print(result: Any) -> None:
    print(json.dumps(result, indent=2, ensure_ascii=False))


def _provider_invite(args: argparse.Namespace) -> int:
    """Register one account; she gets her username and activation link by e-mail."""
    _print(_rpc("auth", "invite_provider", _account_data(args)))
    return 0


def _provider_import(args: argparse.Namespace) -> int:
    """Register a region's list: a CSV file, or a list a coördinator submitted (--list)."""
    from services.auth.lists import decode

    if args.list:
        result = _rpc("auth", "register_provider_list", args.list)
    else:
        if not args.file or not args.region:
            print("fout: geef een CSV-bestand en --region, of --list ID", file=sys.stderr)
            return 2
        with open(args.file, "rb") as source:
            text = decode(source.read())
        result = _rpc("auth", "import_provider_list", args.region, args.file, text)
    # a long list takes several calls, each within the RPC timeout; a row that failed is
    # tried again by a later call, and counts as it ended last
    failed = {f["line"]: f for f in result.get("failed", [])}
    while result.get("remaining"):
        print(
            f"{len(result['registered'])} geregistreerd, nog {result['remaining']} te gaan …",
            file=sys.stderr,
        )
        more = _rpc("auth", "register_provider_list", result.get("list_id") or args.list)
        for row in more["registered"]:
            failed.pop(row["line"], None)
        failed.update({f["line"]: f for f in more["failed"]})
        stuck = not more["registered"] and more["remaining"] >= result["remaining"]
        result = {
            **result,
            "registered": result["registered"] + more["registered"],
            "failed": sorted(failed.values(), key=lambda f: f["line"]),
            "remaining": more["remaining"],
        }
        if stuck:  # nothing went: the mail server is away, or the RPC timeout too short
            print(
                "fout: de registratie kwam niet verder; probeer het later opnieuw", file=sys.stderr
            )
            break
    _print(result)
    problems = [*result.get("errors", []), *result.get("failed", [])]
    for problem in sorted(problems, key=lambda p: p["line"]):
        print(f"regel {problem['line']}: {problem['message']}", file=sys.stderr)
    return 1 if problems or result.get("remaining") else 0


def _provider_reject(args: argparse.Namespace) -> int:
    """Refuse a list a coördinator submitted: its rows not registered are deleted."""
    _print(_rpc("auth", "reject_provider_list", args.list_id))
    return 0


def _provider_list(args: argparse.Namespace) -> int:
    """Every account (filtered), or with --lists the lists coördinators submitted."""
    if args.lists:
        _print(_rpc("auth", "provider_lists", args.status))
        return 0
    filters = {"region": args.region, "role": args.role, "status": args.status, "q": args.search}
    _print(_rpc("auth", "accounts", {k: v for k, v in filters.items() if v}))
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


def _provider_action(method: str) -> Any:
    """unlock, reset, deactivate: one account by username; auth audits each."""

    def run(args: argparse.Namespace) -> int:
        _print(_rpc("auth", method, args.username))
        return 0

    return run


def _second_factor(args: argparse.Namespace) -> int:
    _print(_rpc("auth", "set_second_factor_policy", args.role, args.required == "on"))
    return 0


def _retention_sweep(args: argparse.Namespace) -> int:
    if args.as_of is not None:
        if config.is_production():
            print("--as-of is in productie niet toegestaan.", file=sys.stderr)
            return 2
        date.fromisoformat(args.as_of)
    result = _rpc("retention", "sweep", args.as_of)
    _print(result)
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
    try:
        with _engine(config.database_url("audit")) as engine, Session(engine) as session:
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
    _print(result)
    return 0 if result["ok"] else 1


def _audit_purge(args: argparse.Namespace) -> int:
    """Remove the audit records past their retention, as the audit database's owner."""
    from services.audit.checkpoints import file_store
    from services.audit.purge import PurgeRefused, cutoff, purge

    as_of = date.today()
    if args.as_of is not None:
        if config.is_production():
            print("--as-of is in productie niet toegestaan.", file=sys.stderr)
            return 2
        as_of = date.fromisoformat(args.as_of)
    try:
        key = config.private_key("audit_checkpoint")
        before = cutoff(as_of, config.get_int("OVERDRACHT_AUDIT_RETENTION_YEARS"))
    except (RuntimeError, PurgeRefused) as exc:
        print(f"fout: {exc}; er is niets verwijderd.", file=sys.stderr)
        return 2
    try:
        with _engine(config.database_owner_url("audit")) as engine, Session(engine) as session:
            with session.begin():
                result = purge(session, file_store(), key, before)
    except (PurgeRefused, OSError) as exc:
        print(f"fout: {exc}; er is niets verwijderd.", file=sys.stderr)
        return 1
    _print(result)
    return 0


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
    try:
        with _engine(config.database_url("documents")) as engine:
            result = rewrap_all(engine, keys, args.batch_size)
    except MissingMasterKey as exc:
        print(
            f"fout: er zijn documenten versleuteld onder hoofdsleutel {', '.join(exc.key_ids)}, "
            f"die niet in OVERDRACHT_MASTER_KEYS staat; {unchanged}.",
            file=sys.stderr,
        )
        return 2
    _print(result)
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


def _keys_auth_new(args: argparse.Namespace) -> int:
    """Print auth's sealing keyset with a fresh primary key added to the configured keys."""
    from services.auth.sealing import SETTING, SealingKeyError, new_keyset

    try:
        existing = config.get(SETTING)
    except RuntimeError:  # none configured yet
        existing = None
    try:
        print(f"{SETTING}={new_keyset(existing)}")
    except SealingKeyError as exc:
        print(f"fout: {exc}.", file=sys.stderr)
        return 2
    return 0


def _keys_auth_reseal(args: argparse.Namespace) -> int:
    """Seal every authenticator secret again under the keyset's primary key (auth's database)."""
    from services.auth.sealing import Sealer, reseal_all

    try:
        sealer = Sealer.from_config()
    except (RuntimeError, ValueError) as exc:
        print(f"fout: {exc}; er is niets gewijzigd.", file=sys.stderr)
        return 2
    with _engine(config.database_url("auth")) as engine:
        result = reseal_all(engine, sealer, args.batch_size)
    _print(result)
    return 1 if result["failed"] else 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="overdracht", description=__doc__)
    areas = top.add_subparsers(dest="area", required=True)

    provider = areas.add_parser("provider", help="care providers and other accounts")
    provider_cmds = provider.add_subparsers(dest="command", required=True)
    add = provider_cmds.add_parser("add", help="register an account with a password (scripts)")
    invite = provider_cmds.add_parser(
        "invite", help="register an account and e-mail her an activation link (audited)"
    )
    for command, username_required in ((add, True), (invite, False)):
        command.add_argument(
            "--username", required=username_required, help="invite: made from her name if left out"
        )
        command.add_argument("--full-name", required=True)
        command.add_argument("--email", required=True)
        command.add_argument(
            "--phone", required=True, help="mobile number that receives the SMS code"
        )
        command.add_argument("--region", required=True)
        command.add_argument("--role", required=True, choices=ROLES)
        command.add_argument(
            "--profession", help="verloskundige, gynaecoloog, kraamverzorgende, ..."
        )
        command.add_argument("--organisation")
        command.add_argument("--agb-code", help="8 digits")
    add.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    add.set_defaults(run=_provider_add)
    invite.set_defaults(run=_provider_invite)
    imports = provider_cmds.add_parser(
        "import", help="register a region's provider list and invite each provider (audited)"
    )
    imports.add_argument("file", nargs="?", metavar="FILE.csv", help="README: Provider lists")
    imports.add_argument("--region", help="the region the list's providers belong to")
    imports.add_argument("--list", metavar="ID", help="a list a coördinator submitted instead")
    imports.set_defaults(run=_provider_import)
    reject = provider_cmds.add_parser(
        "reject", help="refuse a submitted list; its rows not registered are deleted (audited)"
    )
    reject.add_argument("list_id", metavar="LIST_ID")
    reject.set_defaults(run=_provider_reject)
    listing = provider_cmds.add_parser("list", help="list and filter accounts")
    listing.add_argument("--region")
    listing.add_argument("--role", choices=ROLES)
    listing.add_argument(
        "--status", help="invited, active, locked, deactivated (--lists: submitted, registered)"
    )
    listing.add_argument("--search", help="part of a name or username")
    listing.add_argument("--lists", action="store_true", help="submitted provider lists instead")
    listing.set_defaults(run=_provider_list)
    for name, method, text in (
        ("unlock", "unlock", "end an account's lock and reset its failed logins (audited)"),
        (
            "reset",
            "reset_provider",
            "helpdesk reset: password and sessions end, a new activation link (audited)",
        ),
        (
            "deactivate",
            "deactivate_provider",
            "no more logins; sessions and links end (audited)",
        ),
    ):
        action = provider_cmds.add_parser(name, help=text)
        action.add_argument("username", metavar="USERNAME")
        action.set_defaults(run=_provider_action(method))

    second = provider_cmds.add_parser(
        "second-factor",
        help="require the authenticator app for a role, or no longer (audited); "
        "only the operator lifts it for auditors and beheerders",
    )
    second.add_argument("role", choices=ROLES)
    second.add_argument("required", choices=("on", "off"))
    second.set_defaults(run=_second_factor)

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
    purge = audit_cmds.add_parser(
        "purge",
        help="remove records older than OVERDRACHT_AUDIT_RETENTION_YEARS (at least 5; as the "
        "database's owner, with a signed marker in the checkpoint store; audited)",
    )
    purge.add_argument("--as-of", help="YYYY-MM-DD; refused in production")
    purge.set_defaults(run=_audit_purge)

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

    keys = areas.add_parser(
        "keys", help="documents' master keys, and the keyset auth seals its secrets with"
    )
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
    auth_new = keys_cmds.add_parser(
        "auth-new", help="print auth's sealing keyset with a fresh primary key added"
    )
    auth_new.set_defaults(run=_keys_auth_new)
    reseal = keys_cmds.add_parser(
        "auth-reseal", help="seal every authenticator secret under the primary key (idempotent)"
    )
    reseal.add_argument("--batch-size", type=int, default=200, help="accounts per transaction")
    reseal.set_defaults(run=_keys_auth_reseal)
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
