"""The message bus as a security boundary: its topology, its users and what each may do.

The platform owns one RabbitMQ vhost. Every component has a broker user of its own, and
provisioning (a definitions file, applied by `rabbitmqctl import_definitions`, or by
`make run` in development) declares every exchange, durable queue and binding up front.
The components themselves declare only their private reply queues: they hold no
configure permission on anything shared, so none can delete, redeclare or rebind it.

Least privilege, per component (regexes on names, plus topic permissions on routing keys):
- it consumes only its own RPC queue and its own reply queues;
- it publishes RPC requests only for the methods it calls, and replies only to the
  components that may call it; it binds nothing to the RPC exchange but its own reply
  keys (`reply-<component>-<uuid>`), so no one can bind `#` and read other calls, nor
  another component's reply key and read its answers;
- it publishes events only on its own event exchange, only its own event names;
- audit consumes every event queue of its own; another service consumes only the queue of
  the one event it subscribes to (SUBSCRIPTIONS), never another's.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import shutil
import subprocess
import time
import uuid
from contextlib import contextmanager
from functools import cache
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import eventlet
import pika
from kombu import Exchange, Queue
from nameko import rpc as nameko_rpc
from nameko.amqp.publish import Publisher
from nameko.constants import NON_PERSISTENT, RPC_EXCHANGE_CONFIG_KEY
from nameko.messaging import QueueConsumer
from nameko.rpc import RPC_REPLY_QUEUE_TTL, ReplyListener
from nameko.standalone.rpc import SingleThreadedReplyListener

from overdracht.contracts import DOCUMENT_UPLOADED, EVENT_SOURCES, DeadlinePassed, Unavailable

RPC_EXCHANGE = "nameko-rpc"
#: The audit service consumes every event of every publishing service.
AUDIT_SERVICE = "audit"
#: Services with an RPC queue, in the order `make run` starts them.
SERVICES = ("auth", "clients", "documents", "audit", "retention")
#: Every component with a broker user: the services, the gateway and the `overdracht` CLI.
COMPONENTS = ("gateway", *SERVICES, "cli")

#: Who may call what over RPC: anything not listed here the broker refuses to route.
CALLS: dict[str, dict[str, tuple[str, ...]]] = {
    "gateway": {
        "auth": (
            "start_login",
            "verify_login",
            "resend_code",
            "authenticate",
            "logout",
            "change_password",
            # the coördinator's and the beheerder's pages
            "submit_provider_list",
            "region_accounts",
            "provider_lists",
            "provider_list",
            "register_provider_list",
            "reject_provider_list",
            "invite_provider",
            "accounts",
            "unlock",
            "reset_provider",
            "deactivate_provider",
            "second_factor_policy",
            "set_second_factor_policy",
            # the authenticator app
            "totp_setup",
            "totp_confirm",
            # activation links, before anyone is logged in
            "activation",
            "send_activation_code",
            "activate",
        ),
        "clients": ("search", "create", "declare_relationship", "mine"),
        "documents": ("begin_upload", "list", "begin_download", "delete", "move_removal_date"),
        "audit": ("query", "export", "find_client", "record_refusal"),
    },
    "documents": {"clients": ("authorize",)},
    "clients": {"auth": ("notify_new_documents",)},
    "retention": {
        "documents": (
            "claim_sweep",
            "expire_due",
            "clients_with_documents",
            "purge_tickets",
            "remove_leftovers",
        ),
        "clients": ("deletion_candidates", "delete_clients", "purge_searches"),
        "auth": ("purge_expired",),
    },
    "cli": {
        "retention": ("sweep",),
        "auth": (
            "import_provider_list",
            "provider_lists",
            "register_provider_list",
            "reject_provider_list",
            "invite_provider",
            "accounts",
            "unlock",
            "reset_provider",
            "deactivate_provider",
            "set_second_factor_policy",
        ),
    },
}

#: Events a service other than audit acts on: service → (source, event name, handler).
#: Clients marks a new document for the others who care for her, and has them told.
SUBSCRIPTIONS: dict[str, tuple[tuple[str, str, str], ...]] = {
    "clients": (("documents", DOCUMENT_UPLOADED, "on_document_uploaded"),),
}

_UUID = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def audit_handler(source: str) -> str:
    """Name of the audit service's handler method for one source service."""
    return f"handle_{source}_event"


def audit_queue(source: str) -> str:
    """The queue nameko's SERVICE_POOL handler uses: evt-<source>-<type>--<service>.<method>."""
    return f"evt-{source}-#--{AUDIT_SERVICE}.{audit_handler(source)}"


def subscription_queue(service: str, source: str, event: str, handler: str) -> str:
    """The queue of one subscribed event, named as nameko's SERVICE_POOL handler names it."""
    return f"evt-{source}-{event}--{service}.{handler}"


def event_exchange(source: str) -> str:
    return f"{source}.events"


# --- who is who on the bus --------------------------------------------------------------


def uri_parts(amqp_uri: str) -> tuple[str, str, str]:
    """(user, password, vhost) of an AMQP URI."""
    parts = urlsplit(amqp_uri)
    vhost = unquote(parts.path[1:]) if len(parts.path) > 1 else "/"
    return unquote(parts.username or ""), unquote(parts.password or ""), vhost


def component_uri(host: str, user: str, password: str, vhost: str, scheme: str = "amqp") -> str:
    user, password, vhost = (quote(x, safe="") for x in (user, password, vhost))
    return f"{scheme}://{user}:{password}@{host}/{vhost}"


def generate_uris(prefix: str, vhost: str, host: str = "127.0.0.1:5672") -> dict[str, str]:
    """OVERDRACHT_<COMPONENT>_AMQP_URI for every component, each with a fresh password."""
    return {
        f"OVERDRACHT_{c.upper()}_AMQP_URI": component_uri(
            host, f"{prefix}{c}", secrets.token_urlsafe(24), vhost
        )
        for c in COMPONENTS
    }


# --- the definitions file ---------------------------------------------------------------


def password_hash(password: str) -> str:
    """RabbitMQ's rabbit_password_hashing_sha256: base64(salt + sha256(salt + password))."""
    salt = secrets.token_bytes(4)
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


def _any(names: list[str]) -> str:
    # `$` alone would also match before a trailing newline ("clients.authorize\n")
    return "^(" + "|".join(names) + ")(?!\\n)$" if names else "^$"


def _reply_queue(component: str) -> str:
    return rf"rpc\.reply-{re.escape(component)}-{_UUID}"


def _reply_key(*components: str) -> str:
    """The routing keys replies to these components travel with (see OwnReplies)."""
    return rf"reply-({'|'.join(re.escape(c) for c in components)})-{_UUID}"


def _permissions(component: str) -> tuple[dict[str, str], list[dict[str, str]]]:
    """Resource permissions (configure, write, read) and topic permissions of one component."""
    calls = CALLS.get(component, {})
    serves = component in SERVICES
    publishes = component in EVENT_SOURCES
    reply_queue = [_reply_queue(component)] if calls else []
    write = ([re.escape(RPC_EXCHANGE)] if calls or serves else []) + reply_queue
    read = list(reply_queue) + ([re.escape(RPC_EXCHANGE)] if calls else [])
    if serves:
        read.append(re.escape(f"rpc-{component}"))
    if publishes:
        write.append(re.escape(event_exchange(component)))
    if component == AUDIT_SERVICE:
        read += [re.escape(audit_queue(source)) for source in EVENT_SOURCES]
    read += [
        re.escape(subscription_queue(component, *subscribed))
        for subscribed in SUBSCRIPTIONS.get(component, ())
    ]
    resource = {"configure": _any(reply_queue), "write": _any(write), "read": _any(read)}

    rpc_keys = [re.escape(f"{s}.{m}") for s, methods in calls.items() for m in methods]
    callers = [c for c, called in CALLS.items() if component in called]
    topics = [
        {
            "exchange": RPC_EXCHANGE,
            # requests it may make, and replies to the components that may call it
            "write": _any(rpc_keys + ([_reply_key(*callers)] if callers else [])),
            # the only bindings it may make: its own reply keys, never a wildcard, never
            # another component's (whose replies would then reach it too)
            "read": _any([_reply_key(component)] if calls else []),
        }
    ]
    if publishes:
        names = [re.escape(n) for n in EVENT_SOURCES[component]]
        topics.append({"exchange": event_exchange(component), "write": _any(names), "read": "^$"})
    return resource, topics


def topology(vhost: str) -> dict[str, list[dict[str, Any]]]:
    """Exchanges, durable queues and bindings, as RabbitMQ's definitions format has them."""
    exchange = {"vhost": vhost, "type": "topic", "durable": True, "auto_delete": False}
    exchanges = [{"name": RPC_EXCHANGE, **exchange, "internal": False, "arguments": {}}]
    queues, bindings = [], []

    def bind(source: str, queue: str, key: str) -> None:
        queues.append(
            {"name": queue, "vhost": vhost, "durable": True, "auto_delete": False, "arguments": {}}
        )
        bindings.append(
            {
                "source": source,
                "vhost": vhost,
                "destination": queue,
                "destination_type": "queue",
                "routing_key": key,
                "arguments": {},
            }
        )

    for service in SERVICES:
        bind(RPC_EXCHANGE, f"rpc-{service}", f"{service}.*")
    for source in EVENT_SOURCES:
        exchanges.append(
            {"name": event_exchange(source), **exchange, "internal": False, "arguments": {}}
        )
        bind(event_exchange(source), audit_queue(source), "#")
    for service, subscribed in SUBSCRIPTIONS.items():
        for source, event, handler in subscribed:
            bind(event_exchange(source), subscription_queue(service, source, event, handler), event)
    return {"exchanges": exchanges, "queues": queues, "bindings": bindings}


def definitions(uris: dict[str, str]) -> dict[str, Any]:
    """The definitions file for these component URIs: vhost, users, permissions, topology.

    uris maps each component to its AMQP URI; every URI names the same vhost.
    """
    vhosts = {uri_parts(uri)[2] for uri in uris.values()}
    if len(vhosts) != 1:
        raise ValueError("every component must use the same vhost")
    (vhost,) = vhosts
    users, permissions, topic_permissions = [], [], []
    for component in COMPONENTS:
        user, password, _ = uri_parts(uris[component])
        if not user or not password:
            raise ValueError(f"the {component} AMQP URI needs a user and a password")
        users.append(
            {
                "name": user,
                "password_hash": password_hash(password),
                "hashing_algorithm": "rabbit_password_hashing_sha256",
                "tags": [],
            }
        )
        resource, topics = _permissions(component)
        permissions.append({"user": user, "vhost": vhost, **resource})
        topic_permissions += [{"user": user, "vhost": vhost, **t} for t in topics]
    return {
        "users": users,
        "vhosts": [{"name": vhost}],
        "permissions": permissions,
        "topic_permissions": topic_permissions,
        **topology(vhost),
    }


def configured_uris() -> dict[str, str]:
    """Each component's URI from the configuration."""
    from overdracht import config

    return {c: config.amqp_uri(c) for c in COMPONENTS}


def component_uris(settings: dict[str, str]) -> dict[str, str]:
    """Each component's URI among these settings (OVERDRACHT_<COMPONENT>_AMQP_URI)."""
    keys = {c: f"OVERDRACHT_{c.upper()}_AMQP_URI" for c in COMPONENTS}
    return {c: settings[key] for c, key in keys.items() if key in settings}


# --- applying it on this machine (development and tests) ---------------------------------


def rabbitmqctl(
    *args: str, node: str | None = None, check: bool = True, stdin: str | None = None
) -> subprocess.CompletedProcess:
    """rabbitmqctl against node (`rabbit@host`; default: rabbitmqctl's own default node)."""
    command = shutil.which("rabbitmqctl")
    if command is None:
        raise RuntimeError("rabbitmqctl not found: a local RabbitMQ is needed (see README)")
    return subprocess.run(  # noqa: S603 - our own arguments
        [command, "-q", *(("-n", node) if node else ()), *args],
        input=stdin,
        check=check,
        capture_output=True,
        text=True,
        timeout=120,
    )


def apply_definitions(defs: dict[str, Any], node: str | None = None) -> None:
    """Import definitions into a broker node, as ops does in production (no file on disk)."""
    result = rabbitmqctl(
        "import_definitions", "--format", "json", node=node, stdin=json.dumps(defs), check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"rabbitmqctl import_definitions failed: {result.stderr.strip()}")


def remove_definitions(uris: dict[str, str], node: str | None = None) -> None:
    """Delete the vhost and the component users these URIs name."""
    vhosts = {uri_parts(uri)[2] for uri in uris.values()}
    for vhost in vhosts - {"/"}:
        rabbitmqctl("delete_vhost", vhost, node=node, check=False)
    for uri in uris.values():
        rabbitmqctl("delete_user", uri_parts(uri)[0], node=node, check=False)


def queue_consumers(amqp_uri: str, queue: str) -> int:
    """Consumers of a queue (passive declare, which needs no configure permission)."""
    connection = pika.BlockingConnection(pika.URLParameters(amqp_uri))
    try:
        return connection.channel().queue_declare(queue, passive=True).method.consumer_count
    finally:
        connection.close()


# --- nameko on a provisioned bus ----------------------------------------------------------


def _provisioned_rpc_exchange(config: dict[str, Any]) -> Exchange:
    """nameko-rpc, declared by provisioning: used by components, never (re)declared by them."""
    name = config.get(RPC_EXCHANGE_CONFIG_KEY, RPC_EXCHANGE)
    return Exchange(name, durable=True, type="topic", no_declare=True)


class OwnReplies:
    """A reply queue and routing key named after the component: `reply-<component>-<uuid>`.

    nameko names a reply key by a bare UUID, which every service it calls learns from the
    request's reply_to: with UUID-shaped bindings allowed, one service could bind another
    caller's key and read its replies. With the component in the key, the topic
    permissions let each component bind only its own.
    """

    component: str | None = None

    def setup(self) -> None:
        reply_id = f"{self.component or self.container.service_name}-{uuid.uuid4()}"
        self.routing_key = f"reply-{reply_id}"
        self.queue = Queue(
            f"rpc.reply-{reply_id}",
            exchange=_provisioned_rpc_exchange(self.container.config),
            routing_key=self.routing_key,
            queue_arguments={"x-expires": RPC_REPLY_QUEUE_TTL},
        )
        self.queue_consumer.register_provider(self)


class ServiceReplyListener(OwnReplies, ReplyListener):
    """Replies to a service's own calls (documents, retention)."""


#: A request's deadline (seconds since the epoch). nameko sends context data as
#: `nameko.<key>` headers and passes them on from call to call, so a call made while
#: handling a request inherits that request's deadline.
DEADLINE = "deadline"
DEADLINE_HEADER = f"nameko.{DEADLINE}"


#: A request's key in the serving worker's context data: a digest of the message's
#: correlation id and body, set by the serving entrypoint from the message itself
#: (whatever a header of that name said). A broker redelivers the same message, so a
#: redelivery has the same key; see db.Transaction.answer.
REQUEST = "request"


def request_key(correlation_id: str | None, body: bytes | str | None) -> str | None:
    if not correlation_id:
        return None
    raw = body.encode() if isinstance(body, str) else body or b""
    return hashlib.sha256(correlation_id.encode() + b"\n" + raw).hexdigest()


def rpc_timeout() -> float:
    from overdracht import config

    return float(config.get("OVERDRACHT_RPC_TIMEOUT"))


def deadline_of(values: dict[str, Any] | None, key: str = DEADLINE) -> float | None:
    """The deadline among context data (or headers, with key=DEADLINE_HEADER), if any."""
    value = (values or {}).get(key)
    return float(value) if isinstance(value, int | float) else None


def remaining(deadline: float | None) -> float:
    """Seconds left before deadline; the RPC timeout when there is none."""
    return rpc_timeout() if deadline is None else deadline - time.time()


#: How long to keep trying a broker that is away before giving up (about a second): the
#: caller answers 503 at once instead of waiting on nameko's retries (up to 9 s).
BROKER_PATIENCE = {"max_retries": 1, "interval_start": 0.5, "interval_step": 0.5, "interval_max": 1}


class TransientPublisher(Publisher):
    """RPC requests and replies are transient: nothing in them outlives their caller.

    A request expires with its caller's patience and a reply is read at once or never, so
    writing either to the broker's disk (nameko publishes everything persistent) costs a
    write, and with confirms an fsync's wait, for a message no restart could use.
    """

    delivery_mode = NON_PERSISTENT


class DeadlinePublisher(TransientPublisher):
    """Publishes RPC requests that expire with their caller's patience.

    Each request carries its deadline twice: as the AMQP expiration, so the broker drops
    it unread once the caller has given up, and as a header, so a service that received
    it in time but got to it too late (it hung, or waited for a worker) drops it too.
    The deadline is the RPC timeout from now, or the inherited one if that is sooner.
    """

    def publish(self, payload: Any, **kwargs: Any) -> None:
        headers = dict(kwargs.pop("extra_headers", None) or {})
        now = time.time()
        deadline = now + rpc_timeout()
        inherited = deadline_of(headers, DEADLINE_HEADER)
        if inherited is not None:
            deadline = min(deadline, inherited)
        if deadline <= now:
            raise DeadlinePassed()
        headers[DEADLINE_HEADER] = deadline
        # copies: nameko adds its own keys to the transport options it is given
        kwargs.setdefault("retry_policy", dict(BROKER_PATIENCE))
        kwargs.setdefault("transport_options", dict(BROKER_PATIENCE))
        super().publish(payload, extra_headers=headers, expiration=deadline - now, **kwargs)


class _DeadlineMethodProxy(nameko_rpc.MethodProxy):
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Wait for the answer only until the deadline: nameko's own proxy waits forever."""
        reply = self._call(*args, **kwargs)
        wait = max(remaining(deadline_of(self.worker_ctx.context_data)), 0.001)
        try:
            with eventlet.Timeout(wait):
                return reply.result()
        except eventlet.Timeout:
            raise Unavailable() from None


class _DeadlineServiceProxy(nameko_rpc.ServiceProxy):
    def __getattr__(self, name: str) -> _DeadlineMethodProxy:
        return _DeadlineMethodProxy(
            self.worker_ctx, self.service_name, name, self.reply_listener, **self.options
        )


class RpcProxy(nameko_rpc.RpcProxy):
    """nameko's RpcProxy, its replies on the service's own reply keys, bounded in time."""

    rpc_reply_listener = ServiceReplyListener()

    def get_dependency(self, worker_ctx: Any) -> _DeadlineServiceProxy:
        return _DeadlineServiceProxy(
            worker_ctx, self.target_service, self.rpc_reply_listener, **self.options
        )


@cache
def standalone_replies(component: str) -> type:
    """The reply listener for a standalone proxy (gateway, CLI) calling as component."""
    return type(
        f"{component.title()}ReplyListener",
        (OwnReplies, SingleThreadedReplyListener),
        {"component": component},
    )


#: A service retries the broker this often while it is away (kombu's default backs off
#: to 30 s, so a service would only notice a returned broker up to 30 s late).
RECONNECT_SECONDS = 1


@contextmanager
def _reconnect_promptly(self: QueueConsumer) -> Any:
    """kombu's ConsumerMixin.establish_connection, with retries at a steady pace."""
    with self.create_connection() as connection:
        connection.ensure_connection(
            self.on_connection_error,
            self.connect_max_retries,
            interval_start=RECONNECT_SECONDS,
            interval_step=0,
            interval_max=RECONNECT_SECONDS,
        )
        yield connection


def adapt_nameko() -> None:
    """Make nameko use the declared exchanges, give every RPC request a deadline, and
    send requests and replies transient.

    Declaring an exchange, even one that exists, needs configure permission on it, and
    configure also allows deleting it. nameko builds its RPC exchange in one function;
    replacing that function keeps every component from needing the permission. Every
    RPC request, from a service or a standalone proxy, goes out through MethodProxy's
    publisher class, and every reply through Responder's. Every consumer in a service
    (its RPC queue, its replies, audit's event queues) reconnects through
    QueueConsumer.establish_connection.
    """
    nameko_rpc.get_rpc_exchange = _provisioned_rpc_exchange
    nameko_rpc.MethodProxy.publisher_cls = DeadlinePublisher
    nameko_rpc.Responder.publisher_cls = TransientPublisher
    QueueConsumer.establish_connection = _reconnect_promptly
