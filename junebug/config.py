"""Junebug's configuration: typed, layered defaults < file < environment < CLI.

The field names are the original's (config files are a user contract).  ``redis``
and ``amqp`` are nested classes rather than dicts.  Every field carries a ``doc``
in its metadata; the ``jb`` flags (:mod:`junebug.config_flags`) and the
environment variables (:mod:`junebug.config_layers`) are generated from the
fields, so there is one declaration per option: a new field gets its flag,
variable and reference entry without anything else to change.  Optional
metadata: ``metavar`` (the flag's placeholder) and ``accumulate`` (layers add
to the list instead of replacing it).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import attrs

from junebug import config_layers
from junebug.amqp.settings import AmqpSettings
from junebug.converter import structure, unstructure
from junebug.dialects import accounts
from junebug.errors import ConfigError
from junebug.http.networks import CallbackNetworks
from junebug.http.server import ServerLimits
from junebug.stores.redis_address import redis_url_validator
from junebug.tls import ca_file_validator

#: The process log formats (junebug/logging_setup.py).
LOG_FORMATS = ("text", "json")


def _doc(text: str, **extra: Any) -> dict[str, Any]:
    return {"doc": text, **extra}


def _non_negative(_inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and value < 0:
        raise ValueError(f"{attribute.name} must not be negative")


def _amqp_url(_inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None:
        try:
            AmqpSettings.from_url(value)
        except ValueError as e:
            raise ValueError(f"{attribute.name}: {e}") from None


def _positive(_inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value <= 0:
        raise ValueError(f"{attribute.name} must be greater than 0")


def _log_format(_inst: Any, attribute: attrs.Attribute[Any], value: str) -> None:
    if value not in LOG_FORMATS:
        raise ValueError(
            f"{attribute.name} must be one of {', '.join(LOG_FORMATS)}, not {value!r}"
        )


def _listen_port(_inst: Any, attribute: attrs.Attribute[Any], value: int) -> None:
    # 0 asks the system for a free port.
    if not 0 <= value <= 65535:
        raise ValueError(f"{attribute.name}: {value} is not a TCP port number")


def _server_port(_inst: Any, attribute: attrs.Attribute[Any], value: int) -> None:
    if not 0 < value <= 65535:
        raise ValueError(f"{attribute.name}: {value} is not a TCP port number")


#: ``workers: auto`` runs one worker per core.
AUTO_WORKERS = "auto"


def _workers_value(value: int | str) -> int | str:
    # Variables and flags give text: "2" is the count 2.
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return value


def _workers(_inst: Any, attribute: attrs.Attribute[Any], value: int | str) -> None:
    if value == AUTO_WORKERS:
        return
    if isinstance(value, str) or value < 1:
        raise ValueError(
            f"{attribute.name} must be a whole number of at least 1 or "
            f"{AUTO_WORKERS!r}, not {value!r}"
        )


def _send_users(
    _inst: Any, _attribute: attrs.Attribute[Any], value: list[dict[str, Any]]
) -> None:
    accounts.send_users(value)


def _plugin_entries(
    _inst: Any, _attribute: attrs.Attribute[Any], value: list[dict[str, Any]]
) -> None:
    for entry in value:
        if not isinstance(entry.get("type"), str):
            raise ValueError("plugins: each plugin needs a 'type' class path")


@attrs.frozen
class RedisConfig:
    """Connection to Redis."""

    host: str = attrs.field(default="localhost", metadata=_doc("Redis host"))
    port: int = attrs.field(
        default=6379, validator=_server_port, metadata=_doc("Redis port")
    )
    db: int = attrs.field(default=0, metadata=_doc("Redis database number"))
    password: str | None = attrs.field(default=None, metadata=_doc("Redis password"))
    key_prefix: str | None = attrs.field(
        default=None, metadata=_doc("Prefix (joined with ':') for every key")
    )
    username: str | None = attrs.field(
        default=None, metadata=_doc("Redis ACL user (Redis 6+); with password")
    )
    tls: bool = attrs.field(
        default=False, metadata=_doc("Connect with TLS, verifying the certificate")
    )
    ca_file: str | None = attrs.field(
        default=None,
        validator=ca_file_validator,
        metadata=_doc("PEM CA bundle for Redis TLS; the platform's CAs if unset"),
    )
    url: str | None = attrs.field(
        default=None,
        validator=redis_url_validator,
        metadata=_doc(
            "redis://, rediss:// (TLS) or unix:// URL; replaces host, port, db, "
            "username, password and tls"
        ),
    )


@attrs.frozen
class AmqpConfig:
    """Connection to RabbitMQ."""

    hostname: str = attrs.field(default="127.0.0.1", metadata=_doc("AMQP host"))
    port: int = attrs.field(
        default=5672, validator=_server_port, metadata=_doc("AMQP port")
    )
    vhost: str = attrs.field(default="/", metadata=_doc("AMQP virtual host"))
    username: str = attrs.field(default="guest", metadata=_doc("AMQP user"))
    password: str = attrs.field(default="guest", metadata=_doc("AMQP password"))
    heartbeat: int = attrs.field(default=30, metadata=_doc("AMQP heartbeat (s)"))
    db: int = attrs.field(default=0, metadata=_doc("Unused; kept for old files"))
    prefetch: int = attrs.field(
        default=20, metadata=_doc("Unacknowledged messages per consumer")
    )
    channel_max: int = attrs.field(
        default=2047,
        validator=_positive,
        metadata=_doc(
            "Most AMQP channels on the connection (the broker may allow fewer);"
            " past them consumers share channels; an amqp_url's channel_max"
            " option wins over it"
        ),
    )

    def settings(self, url: str | None = None) -> AmqpSettings:
        """The broker connection settings: ``url`` if given (with this
        ``channel_max`` unless the URL has its own), else these fields."""
        if url is not None:
            parsed = AmqpSettings.from_url(url)
            if parsed.channel_max is None:
                parsed = attrs.evolve(parsed, channel_max=self.channel_max)
            return parsed
        return AmqpSettings(
            host=self.hostname,
            port=self.port,
            vhost=self.vhost,
            username=self.username,
            password=self.password,
            heartbeat=self.heartbeat,
            channel_max=self.channel_max,
        )


@attrs.frozen
class ClusterConfig:
    """How the ``jb`` processes sharing one Redis and RabbitMQ share the work
    (docs/cluster.rst)."""

    lease_seconds: float = attrs.field(
        default=6.0,
        validator=_positive,
        metadata=_doc(
            "Seconds a channel's ownership lease (and a process heartbeat) lasts"
            " without renewal: a process that dies loses its channels this long"
            " after its last renewal; renewed every third of it"
        ),
    )
    reconcile_interval: float = attrs.field(
        default=1.0,
        validator=_positive,
        metadata=_doc(
            "Seconds between two passes that place channels and pick up changes"
            " made through other processes"
        ),
    )
    control_timeout: float = attrs.field(
        default=10.0,
        validator=_positive,
        metadata=_doc(
            "Seconds to wait for the owner of a channel to answer a change sent"
            " to it before answering 503"
        ),
    )

    def __attrs_post_init__(self) -> None:
        if self.lease_seconds < 0.5:
            raise ValueError("lease_seconds must be at least 0.5")


@attrs.frozen
class JunebugConfig:
    """Everything ``jb`` can be configured with."""

    interface: str = attrs.field(
        default="localhost", metadata=_doc("The interface to expose the API on")
    )
    port: int = attrs.field(
        default=8080,
        validator=_listen_port,
        metadata=_doc("The port to expose the API on"),
    )
    logfile: str | None = attrs.field(
        default=None, metadata=_doc("The file to log to; stdout only if unset")
    )
    sentry_dsn: str | None = attrs.field(
        default=None, metadata=_doc("The Sentry DSN to send errors to")
    )
    log_format: str = attrs.field(
        default="text",
        validator=_log_format,
        metadata=_doc(
            "Process log lines: text, or json (one JSON object a line)",
            metavar="text|json",
        ),
    )
    redis: RedisConfig = attrs.field(factory=RedisConfig)
    amqp: AmqpConfig = attrs.field(factory=AmqpConfig)
    cluster: ClusterConfig = attrs.field(factory=ClusterConfig)
    amqp_url: str | None = attrs.field(
        default=None,
        validator=_amqp_url,
        metadata=_doc(
            "An amqp:// or amqps:// URL (TLS, several hosts, options such as"
            " ?heartbeat=; see 'AMQP connection'); if set, it is used instead"
            " of amqp's hostname, port, vhost, username, password and heartbeat"
        ),
    )
    inbound_message_ttl: int = attrs.field(
        default=600,
        validator=_positive,
        metadata=_doc("Seconds a reply to an inbound message is allowed"),
    )
    outbound_message_ttl: int = attrs.field(
        default=172800,
        validator=_positive,
        metadata=_doc("Seconds events are accepted for an outbound message"),
    )
    allow_expired_replies: bool = attrs.field(
        default=False,
        metadata=_doc("Send a reply whose inbound expired as a new message to 'to'"),
    )
    channels: dict[str, str] = attrs.field(
        factory=dict,
        metadata=_doc(
            "Extra channel types: type -> dotted class path", metavar="TYPE:CLASS"
        ),
    )
    replace_channels: bool = attrs.field(
        default=False, metadata=_doc("Replace the default channel types")
    )
    routers: dict[str, str] = attrs.field(
        factory=dict,
        metadata=_doc(
            "Extra router types: type -> dotted class path", metavar="TYPE:CLASS"
        ),
    )
    replace_routers: bool = attrs.field(
        default=False, metadata=_doc("Replace the default router types")
    )
    plugins: list[dict[str, Any]] = attrs.field(
        factory=list,
        validator=_plugin_entries,
        metadata=_doc("Plugin configs, each with a 'type' class path", accumulate=True),
    )
    metric_window: float = attrs.field(
        default=10.0,
        validator=_positive,
        metadata=_doc("Seconds per metrics bucket"),
    )
    rate_limit_margin: float = attrs.field(
        default=0.05,
        validator=_non_negative,
        metadata=_doc(
            "Seconds a send stays counted beyond its channel's"
            " rate_limit_window, so that a connection that sees sends a little"
            " late (by varying delays) still sees at most rate_limit_count in"
            " any window"
        ),
    )
    handoff_timeout: float = attrs.field(
        default=0.25,
        validator=_non_negative,
        metadata=_doc(
            "Seconds the process that runs a channel's transport waits to hand"
            " an event or MO message straight to the channel's forwarder"
            " (stored, and POSTed to event_url or mo_url) before it publishes"
            " it to RabbitMQ instead; 0 always publishes"
        ),
    )
    logging_path: str = attrs.field(
        default="logs/", metadata=_doc("Directory for per-channel log files")
    )
    log_rotate_size: int = attrs.field(
        default=1_000_000,
        validator=_positive,
        metadata=_doc("Bytes before a channel log file is rotated"),
    )
    max_log_files: int | None = attrs.field(
        default=5,
        validator=_non_negative,
        metadata=_doc("Rotated log files kept; 0 is unlimited"),
    )
    max_logs: int = attrs.field(
        default=100,
        validator=_positive,
        metadata=_doc("Most log entries the logs endpoints return"),
    )
    stored_log_lines: int = attrs.field(
        default=1000,
        validator=_positive,
        metadata=_doc(
            "Newest log entries of each channel, router and destination kept in "
            "Redis (readable through any process)"
        ),
    )
    stored_logs_ttl: int = attrs.field(
        default=604800,
        validator=_positive,
        metadata=_doc(
            "Seconds a stored log list lives after its last entry "
            "(deleted with its channel or router)"
        ),
    )
    message_log_lines: int = attrs.field(
        default=200,
        validator=_positive,
        metadata=_doc(
            "Most entries (log lines, protocol exchanges) kept per message for "
            "the message logs endpoints; they live as long as the longer of "
            "inbound_message_ttl and outbound_message_ttl"
        ),
    )
    rabbitmq_management_interface: str | None = attrs.field(
        default=None,
        metadata=_doc("host:port of the RabbitMQ management API, for /health"),
    )
    api_token: str | None = attrs.field(
        default=None,
        metadata=_doc("Require 'Authorization: Token <api_token>' on the API"),
    )
    api_username: str | None = attrs.field(
        default=None, metadata=_doc("Accept HTTP Basic with this user on the API")
    )
    api_password: str | None = attrs.field(
        default=None, metadata=_doc("The password for api_username")
    )
    http_retry_max_age: float = attrs.field(
        default=86400.0,
        validator=_positive,
        metadata=_doc(
            "Most seconds failed mo_url/event_url/status_url posts are retried "
            "before they go to the dead-letter queue; MO posts stop at "
            "inbound_message_ttl and event posts at outbound_message_ttl first"
        ),
    )
    callback_allow_networks: list[str] = attrs.field(
        factory=list,
        metadata=_doc(
            "Networks (CIDR) mo_url/event_url/status_url posts may connect to; "
            "empty allows any not denied"
        ),
    )
    callback_deny_networks: list[str] = attrs.field(
        factory=list,
        metadata=_doc(
            "Networks (CIDR) mo_url/event_url/status_url posts never connect to, "
            "checked against the resolved address at delivery time"
        ),
    )
    http_ca_file: str | None = attrs.field(
        default=None,
        validator=ca_file_validator,
        metadata=_doc(
            "PEM CA bundle that HTTPS servers' certificates are checked against "
            "(mo_url, event_url, status_url); the platform's CAs if unset"
        ),
    )
    startup_channels: list[dict[str, Any]] = attrs.field(
        factory=list,
        metadata=_doc(
            "Channels created at start-up unless one with the same 'id' exists"
        ),
    )
    embedded: bool = attrs.field(
        default=False,
        metadata=_doc("In-memory store and broker; nothing persists"),
    )
    workers: int | str = attrs.field(
        default=1,
        converter=_workers_value,
        validator=_workers,
        metadata=_doc(
            "jb processes serving one API port, supervised by this one "
            "(restarted if they die); 'auto' is one per core; 1 runs no "
            "supervisor",
            metavar="N|auto",
        ),
    )
    startup_timeout: float | None = attrs.field(
        default=None,
        validator=_non_negative,
        metadata=_doc(
            "Seconds jb waits in all at start for Redis and RabbitMQ before it "
            "exits with status 1; unset or 0: wait for them as long as it takes, "
            "serving the API (503 until they answer) and /health meanwhile"
        ),
    )
    shutdown_timeout: float = attrs.field(
        default=30.0,
        validator=_non_negative,
        metadata=_doc(
            "Seconds jb gives requests in flight to finish after SIGTERM "
            "before it stops anyway (new requests answer 503 meanwhile)"
        ),
    )
    max_body_size: int = attrs.field(
        default=1_048_576,
        validator=_positive,
        metadata=_doc("Largest request body the API accepts, in bytes"),
    )
    header_timeout: float = attrs.field(
        default=30.0,
        validator=_positive,
        metadata=_doc(
            "Seconds a client has to send a request's line and headers, from "
            "connecting or from the previous answer"
        ),
    )
    dialect_port: int | None = attrs.field(
        default=None,
        validator=attrs.validators.optional(_listen_port),
        metadata=_doc(
            "A second port (on interface) serving only the Kannel and Jasmin "
            "send routes, as Kannel's sendsms-port; unset: the API port only"
        ),
    )
    metrics_port: int | None = attrs.field(
        default=None,
        validator=attrs.validators.optional(_listen_port),
        metadata=_doc(
            "A port (on interface) where this process also serves its own "
            "/metrics and /health/live; with workers N, worker k uses "
            "metrics_port + k - 1 (0: each picks a free port, logged); "
            "unset: /metrics on the API port only"
        ),
    )
    send_users: list[dict[str, Any]] = attrs.field(
        factory=list,
        validator=_send_users,
        metadata=_doc(
            "Accounts of the Kannel (/cgi-bin/sendsms) and Jasmin (/send) "
            "interfaces: username, password, and channel_id or router_id and "
            "destination_id; optionally dialects (kannel, jasmin)"
        ),
    )
    max_connections: int = attrs.field(
        default=1024,
        validator=_non_negative,
        metadata=_doc("Most connections the API keeps open at once; 0 is unlimited"),
    )
    dashboard: bool = attrs.field(
        default=False,
        metadata=_doc(
            "Serve the web dashboard under /dashboard/ on the API port, behind "
            "the API's authentication (see docs/dashboard.rst)"
        ),
    )

    def __attrs_post_init__(self) -> None:
        if self.max_log_files == 0:
            object.__setattr__(self, "max_log_files", None)
        self.callback_networks  # noqa: B018 - a bad network stops jb now
        if self.embedded and self.worker_count > 1:
            raise ConfigError(
                f"workers: {self.worker_count} worker processes cannot share "
                "the in-memory store and broker of --embedded; use Redis and "
                "RabbitMQ, or workers: 1"
            )
        self._check_metrics_ports()

    def _check_metrics_ports(self) -> None:
        """The ports ``metrics_port`` gives the workers fit below 65536 and
        take neither the API's port nor ``dialect_port``."""
        first = self.metrics_port
        if not first:
            return
        last = first + self.worker_count - 1
        if last > 65535:
            raise ConfigError(
                f"metrics_port: {first} + {self.worker_count} workers goes past "
                "port 65535"
            )
        for name in ("port", "dialect_port"):
            taken = getattr(self, name)
            if taken and first <= taken <= last:
                raise ConfigError(
                    f"metrics_port: the workers' metrics ports {first}-{last} "
                    f"include {name} {taken}"
                )

    def metrics_port_of(self, worker: int | None) -> int | None:
        """The metrics port of worker ``worker`` (1 to N; None: no
        supervisor): ``metrics_port + worker - 1``, 0 stays 0."""
        if self.metrics_port is None:
            return None
        if not self.metrics_port or worker is None:
            return self.metrics_port
        return self.metrics_port + worker - 1

    @property
    def worker_count(self) -> int:
        """How many worker processes ``workers`` asks for (``auto``: the
        number of cores)."""
        if self.workers == AUTO_WORKERS:
            return os.cpu_count() or 1
        return int(self.workers)

    @property
    def callback_networks(self) -> CallbackNetworks:
        """The allow and deny lists of callback networks (ConfigError if bad)."""
        return CallbackNetworks.from_lists(
            self.callback_allow_networks, self.callback_deny_networks
        )

    @property
    def server_limits(self) -> ServerLimits:
        """What the API's HTTP port accepts."""
        return ServerLimits(
            max_body_size=self.max_body_size,
            header_timeout=self.header_timeout,
            max_connections=self.max_connections,
        )


#: Environment variables are ``JUNEBUG_`` + the field path in capitals, with
#: nested fields joined by ``_``: ``JUNEBUG_PORT``, ``JUNEBUG_REDIS_HOST``.
ENV_PREFIX = "JUNEBUG_"


def from_environment(environ: Mapping[str, str]) -> dict[str, Any]:
    """The config values set by ``JUNEBUG_*`` variables, as nested plain data."""
    return config_layers.from_environment(JunebugConfig, ENV_PREFIX, environ)


def merge(*layers: Mapping[str, Any]) -> dict[str, Any]:
    """Merge layers left to right; ``redis``/``amqp`` merge key by key.

    ``plugins`` accumulate (later layers append), as the original appended CLI
    plugins to the file's list.  Other keys are replaced wholesale.
    """
    return config_layers.merge(JunebugConfig, *layers)


_KNOWN_KEYS = frozenset(f.name for f in attrs.fields(JunebugConfig))


def build_config(*layers: Mapping[str, Any]) -> JunebugConfig:
    """Validate merged layers into a JunebugConfig (unknown top-level keys ignored)."""
    data = {k: v for k, v in merge(*layers).items() if k in _KNOWN_KEYS}
    try:
        return structure(data, JunebugConfig, path="config", forbid_extra_keys=False)
    except ConfigError:
        raise
    except Exception as exc:  # validators raise ConfigError wrapped by cattrs
        raise ConfigError(str(exc)) from exc


def load_config(
    path: str | None = None,
    environ: Mapping[str, str] | None = None,
    cli: Mapping[str, Any] | None = None,
) -> JunebugConfig:
    """Defaults < file < environment < explicit CLI flags."""
    file_layer = config_layers.load_file(path) if path else {}
    env_layer = from_environment(os.environ if environ is None else environ)
    return build_config(file_layer, env_layer, cli or {})


def as_dict(config: JunebugConfig) -> dict[str, Any]:
    """Plain data for a config (what plugins receive as ``junebug_config``)."""
    data: dict[str, Any] = unstructure(config)
    return data
