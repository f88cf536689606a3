"""Settings from the environment, one place for every variable the README lists.

In development `make run` writes generated secrets to `var/overdracht.env`; every
process (services, gateway, CLI) reads that file when it exists, and real environment
variables win over it. Production sets the environment and has no such file.
"""

from __future__ import annotations

import json
import os
import ssl
from functools import cache
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from dotenv import dotenv_values

DEFAULT_DOCUMENT_TYPES = (
    "baringsverslag:Baringsverslag,"
    "diagnostiek:Diagnostiek,"
    "kraambed:Kraambed,"
    "lab_uitslag:Labuitslag,"
    "zwangerschapskaart:Zwangerschapskaart"
)

DEFAULTS = {
    "OVERDRACHT_ENV": "development",
    # the broker `make run` and the tests provision (rabbitmqctl -n NODE; empty: the local one)
    "OVERDRACHT_AMQP_ADDRESS": "127.0.0.1:5672",
    "OVERDRACHT_RABBITMQ_NODE": "",
    "OVERDRACHT_POSTGRES_ADMIN_URL": "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres",
    "OVERDRACHT_DB_POOL_SIZE": "10",
    "OVERDRACHT_S3_ENDPOINT": "127.0.0.1:8333",
    "OVERDRACHT_S3_SECURE": "false",
    "OVERDRACHT_S3_BUCKET": "overdracht-documents",
    "OVERDRACHT_S3_REGION": "us-east-1",
    "OVERDRACHT_DOCUMENTS_BIND": "127.0.0.1:8001",
    "OVERDRACHT_DOCUMENTS_URL": "http://127.0.0.1:8001",
    "OVERDRACHT_GATEWAY_BIND": "127.0.0.1:8000",
    "OVERDRACHT_TRUSTED_PROXIES": "0",
    "OVERDRACHT_RPC_TIMEOUT": "15",
    "OVERDRACHT_RPC_POOL_SIZE": "16",
    # SMS: "outbox" (a file, development only) or "cm" (CM.com; OVERDRACHT_SMS_CM_PRODUCT_TOKEN)
    "OVERDRACHT_SMS_PROVIDER": "outbox",
    "OVERDRACHT_SMS_OUTBOX": "var/outbox/sms.jsonl",
    "OVERDRACHT_SMS_CM_URL": "https://gw.messaging.cm.com/v1.0/message",
    # the sender name a phone shows: at most 11 letters and digits
    "OVERDRACHT_SMS_SENDER": "Overdracht",
    # per try, to connect and to read the answer; tries after the first on a network error,
    # a timeout or a 429/502/503/504
    "OVERDRACHT_SMS_TIMEOUT_SECONDS": "5",
    "OVERDRACHT_SMS_RETRIES": "2",
    # e-mail: "outbox" (a Maildir, development only) or "smtp"
    "OVERDRACHT_MAIL_PROVIDER": "outbox",
    "OVERDRACHT_MAIL_OUTBOX": "var/outbox/mail",
    "OVERDRACHT_MAIL_FROM": "Overdracht <noreply@overdracht.invalid>",
    # no username: no login; the password is a secret, set it in the environment
    "OVERDRACHT_SMTP_HOST": "",
    "OVERDRACHT_SMTP_PORT": "587",
    "OVERDRACHT_SMTP_USERNAME": "",
    "OVERDRACHT_SMTP_PASSWORD": "",
    "OVERDRACHT_SMTP_STARTTLS": "true",
    "OVERDRACHT_SMTP_TIMEOUT_SECONDS": "10",
    # the address providers open the platform at, for links in e-mail (empty: the gateway's
    # own bind address, for development); an activation link is good this many hours
    "OVERDRACHT_PUBLIC_URL": "",
    "OVERDRACHT_ACTIVATION_HOURS": "72",
    "OVERDRACHT_SMS_CODE_TTL_SECONDS": "300",
    "OVERDRACHT_SMS_CODE_ATTEMPTS": "3",
    "OVERDRACHT_SMS_RESEND_SECONDS": "60",
    "OVERDRACHT_LOGIN_LOCK_AFTER": "10",
    # an account locks for this long after LOCK_AFTER failures, twice as long each new lock
    # (until a login succeeds), never longer than the maximum
    "OVERDRACHT_LOGIN_LOCK_MINUTES": "15",
    "OVERDRACHT_LOGIN_LOCK_MAX_MINUTES": "1440",
    # failed logins per hour from one address, and from one /24 (IPv6: /64) network
    "OVERDRACHT_LOGIN_THROTTLE_PER_ADDRESS": "30",
    "OVERDRACHT_LOGIN_THROTTLE_PER_NETWORK": "100",
    # development and tests only: a file of seconds added to auth's clock (overdracht/clock.py)
    "OVERDRACHT_CLOCK_FILE": "",
    "OVERDRACHT_SESSION_IDLE_MINUTES": "30",
    "OVERDRACHT_SESSION_ABSOLUTE_HOURS": "12",
    "OVERDRACHT_SEARCH_LIMIT_PER_HOUR": "60",
    "OVERDRACHT_RELATIONSHIP_SEARCH_WINDOW_MINUTES": "60",
    "OVERDRACHT_REMOVAL_HORIZON_WEEKS": "46",
    "OVERDRACHT_REMOVAL_AFTER_DUE_WEEKS": "6",
    "OVERDRACHT_MAX_DOCUMENT_BYTES": str(100 * 1024 * 1024),
    "OVERDRACHT_DOCUMENT_TYPES": DEFAULT_DOCUMENT_TYPES,
    "OVERDRACHT_CONTENT_TYPES": (
        "application/pdf,image/png,image/jpeg,image/tiff,"
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
    ),
    "OVERDRACHT_TICKET_TTL_SECONDS": "120",
    "OVERDRACHT_RETENTION_INTERVAL_SECONDS": "3600",
    "OVERDRACHT_CLIENT_GRACE_DAYS": "1",
    "OVERDRACHT_LEFTOVER_GRACE_MINUTES": "60",
    "OVERDRACHT_SEARCH_RETENTION_HOURS": "24",
    "OVERDRACHT_OUTBOX_RELAY_SECONDS": "2",
    "OVERDRACHT_AUDIT_CHECKPOINT_SECONDS": "60",
    "OVERDRACHT_AUDIT_CHECKPOINT_DIR": "var/audit-checkpoints",
    # audit records are kept this long (at least five), whatever happens to documents
    "OVERDRACHT_AUDIT_RETENTION_YEARS": "5",
    "OVERDRACHT_AMQP_CA_FILE": "",
    "OVERDRACHT_AMQP_CERT_FILE": "",
    "OVERDRACHT_AMQP_KEY_FILE": "",
    "OVERDRACHT_BUS_USER_PREFIX": "overdracht-",
    "OVERDRACHT_MAX_EVENT_BYTES": "16384",
    # slow senders (gateway/worker.py, documents' HTTP port): a pause, in seconds, and the
    # average rate, in bytes per second, a request's sender must keep up
    "OVERDRACHT_REQUEST_READ_TIMEOUT": "20",
    "OVERDRACHT_REQUEST_MIN_RATE": "8192",
    # documents: file bodies in flight at once, on workers of their own (not max_workers)
    "OVERDRACHT_TRANSFER_WORKERS": "10",
    # documents: uploads being written to the object store at once, each holding a part
    # of up to 8 MiB in memory (services/documents/storage.py); the others wait for one
    "OVERDRACHT_STORE_PUTS": "2",
    # documents: plaintext of small documents held in memory while they are served, at
    # most this much at once; a download beyond it is served as a large one is
    "OVERDRACHT_DOWNLOAD_HOLD_MB": "24",
}

#: Secrets have no default: `make run` generates them, production must set them.
SECRETS = (
    "OVERDRACHT_PRINCIPAL_PRIVATE_KEY",
    "OVERDRACHT_PRINCIPAL_PUBLIC_KEY",
    "OVERDRACHT_SYSTEM_PRIVATE_KEY",
    "OVERDRACHT_SYSTEM_PUBLIC_KEY",
    "OVERDRACHT_AUDIT_CHECKPOINT_PRIVATE_KEY",
    "OVERDRACHT_AUDIT_CHECKPOINT_PUBLIC_KEY",
    "OVERDRACHT_GATEWAY_PRIVATE_KEY",
    "OVERDRACHT_GATEWAY_PUBLIC_KEY",
    "OVERDRACHT_OPERATOR_PRIVATE_KEY",
    "OVERDRACHT_OPERATOR_PUBLIC_KEY",
    "OVERDRACHT_CLIENTS_PRIVATE_KEY",
    "OVERDRACHT_CLIENTS_PUBLIC_KEY",
    "OVERDRACHT_PEPPER",
    "OVERDRACHT_AUDIT_PEPPER",
    "OVERDRACHT_AUDIT_LOOKUP_PRIVATE_KEYSET",
    "OVERDRACHT_AUDIT_LOOKUP_PUBLIC_KEYSET",
    "OVERDRACHT_SECRET_KEY",
    "OVERDRACHT_S3_ACCESS_KEY",
    "OVERDRACHT_S3_SECRET_KEY",
    "OVERDRACHT_MASTER_KEYS",
    "OVERDRACHT_MASTER_KEY_ID",
    "OVERDRACHT_AUTH_SEALING_KEYSET",
)


def env_file() -> Path:
    """Where development secrets live."""
    return Path(os.environ.get("OVERDRACHT_ENV_FILE", "var/overdracht.env"))


@cache
def _file_values() -> dict[str, str]:
    path = env_file()
    if not path.is_file():
        return {}
    return {k: v for k, v in dotenv_values(path).items() if v is not None}


def get(name: str) -> str:
    """One setting: environment, then the development env file, then the default."""
    if name in os.environ:
        return os.environ[name]
    if name in _file_values():
        return _file_values()[name]
    if name in DEFAULTS:
        return DEFAULTS[name]
    raise RuntimeError(f"{name} is not set; see README, 'Configuration'")


def get_int(name: str) -> int:
    return int(get(name))


def get_bool(name: str) -> bool:
    return get(name).strip().lower() in {"1", "true", "yes", "on"}


def is_production() -> bool:
    return get("OVERDRACHT_ENV") == "production"


def document_types() -> dict[str, str]:
    """API value → Dutch label, in configured order."""
    pairs = (item.split(":", 1) for item in get("OVERDRACHT_DOCUMENT_TYPES").split(","))
    return {value.strip(): label.strip() for value, label in pairs}


def content_types() -> frozenset[str]:
    return frozenset(t.strip() for t in get("OVERDRACHT_CONTENT_TYPES").split(",") if t.strip())


def private_key(holder: str) -> Ed25519PrivateKey:
    """A holder's own Ed25519 key (OVERDRACHT_<HOLDER>_PRIVATE_KEY).

    Auth signs principals with "principal", retention its removals with "system", the
    gateway and the operator their calls, clients its grants, audit its checkpoints
    ("audit_checkpoint").
    """
    return Ed25519PrivateKey.from_private_bytes(
        bytes.fromhex(get(f"OVERDRACHT_{holder.upper()}_PRIVATE_KEY"))
    )


def public_key(holder: str) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(
        bytes.fromhex(get(f"OVERDRACHT_{holder.upper()}_PUBLIC_KEY"))
    )


def master_keys() -> tuple[str, dict[str, Any]]:
    """The master key id new data keys are wrapped with, and every configured master key.

    OVERDRACHT_MASTER_KEYS is a JSON object: key id → a Tink AEAD keyset in Tink's JSON
    format. The error messages never repeat what the setting holds.
    """
    current = get("OVERDRACHT_MASTER_KEY_ID")
    try:
        keys = json.loads(get("OVERDRACHT_MASTER_KEYS"))
    except ValueError:
        raise ValueError("OVERDRACHT_MASTER_KEYS is not JSON; see README") from None
    if not isinstance(keys, dict):
        raise ValueError("OVERDRACHT_MASTER_KEYS must be a JSON object: key id → Tink keyset")
    return current, keys


def database_url(service: str) -> str:
    """The service's runtime URL: its own role, which can use its tables but not alter them."""
    return get(f"OVERDRACHT_{service.upper()}_DB")


def database_owner_url(service: str) -> str:
    """The URL migrations run with: the role that owns the service's database and schema."""
    return get(f"OVERDRACHT_{service.upper()}_OWNER_DB")


def amqp_uri(component: str) -> str:
    """A component's broker URI: its own user, the platform's vhost."""
    return get(f"OVERDRACHT_{component.upper()}_AMQP_URI")


def amqp_ssl() -> dict[str, Any] | None:
    """TLS options for amqps:// (nameko's AMQP_SSL); None for plain AMQP."""
    ca_file = get("OVERDRACHT_AMQP_CA_FILE")
    if not ca_file:
        return None
    # server_hostname None: kombu fills in the URI's host, so py-amqp checks the name too,
    # not only that the CA signed the certificate
    options: dict[str, Any] = {
        "ca_certs": ca_file,
        "cert_reqs": ssl.CERT_REQUIRED,
        "server_hostname": None,
    }
    if get("OVERDRACHT_AMQP_CERT_FILE"):
        options["certfile"] = get("OVERDRACHT_AMQP_CERT_FILE")
        options["keyfile"] = get("OVERDRACHT_AMQP_KEY_FILE")
    return options


def nameko_config(component: str) -> dict[str, Any]:
    """What a standalone nameko proxy needs to talk as this component."""
    return {"AMQP_URI": amqp_uri(component), "AMQP_SSL": amqp_ssl(), "serializer": "json"}
