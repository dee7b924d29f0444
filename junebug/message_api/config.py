"""The configuration of ``jb message-api``: typed, layered like ``jb``'s own.

The option names are those of vumi2's Junebug message API (``connector_name``,
``mo_message_url``, ``state_cache_class``...), so its config files work here.
Sources are layered defaults < YAML file < ``JUNEBUG_MESSAGE_API_*``
environment < flags given on the command line; ``amqp`` and ``auth`` merge key
by key, every other key (``state_cache_config`` too) is replaced whole.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, cast

import attrs
from twisted.internet.endpoints import serverFromString

from junebug import config_layers
from junebug.config import AmqpConfig
from junebug.converter import structure
from junebug.errors import ApiUsageError, ConfigError
from junebug.http.server import ServerLimits
from junebug.http.url_templates import check_event_url, check_mo_url
from junebug.http.urls import http_url_problem
from junebug.tls import ca_file_validator

ENV_PREFIX = "JUNEBUG_MESSAGE_API_"
#: The environment variable naming a config file (when ``--config`` is not given).
ENV_CONFIG_FILE = ENV_PREFIX + "CONFIG_FILE"

#: Twisted endpoint types ``http_bind`` may name directly.
_ENDPOINT_TYPES = ("tcp:", "tcp6:", "ssl:", "unix:", "systemd:")
_HOST_PORT = re.compile(
    r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[^:\[\]]*)):(?P<port>\d+)$"
)
#: ``base_url_path`` may hold one variable segment, the channel id of a
#: Junebug URL; any value matches and is ignored.
_CHANNEL_ID_SEGMENT = re.compile(r"[<{]channel_id[>}]")


def _doc(text: str) -> dict[str, Any]:
    return {"doc": text}


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace(":", "\\:")


def bind_endpoint(http_bind: str) -> str:
    """The Twisted server endpoint description for an ``http_bind`` value.

    ``host:port`` and ``[v6addr]:port`` listen on that interface (an empty host
    means every interface); ``unix:/path`` and other Twisted descriptions
    (``tcp:8080:interface=0.0.0.0``, ``ssl:...``) are used as they are.
    """
    value = http_bind.strip()
    if value.startswith(_ENDPOINT_TYPES):
        check_endpoint(value)
        return value
    match = _HOST_PORT.match(value)
    if match is None:
        raise ConfigError(
            f"http_bind: expected 'host:port', '[v6addr]:port', 'unix:/path' or a "
            f"Twisted endpoint description, got {http_bind!r}"
        )
    port = int(match["port"])
    if port > 65535:
        raise ConfigError(f"http_bind: {port} is not a TCP port number")
    if match["v6"]:
        return f"tcp6:{port}:interface={_escape(match['v6'])}"
    host = match["host"]
    if not host:
        return f"tcp:{port}"
    return f"tcp:{port}:interface={_escape(host)}"


def messages_route(base_url_path: str) -> str:
    """The Klein rule of the messages endpoint for a ``base_url_path``.

    vumi2 joins the two with one slash: ``""`` gives ``/messages`` and
    ``/channels/`` gives ``/channels/messages``.  A ``<channel_id>`` (or
    ``{channel_id}``) segment matches any channel id, so ``/channels/<channel_id>``
    serves Junebug's own URLs, ``/channels/<id>/messages/``.
    """
    base = base_url_path.strip()
    if base and not base.startswith("/"):
        raise ConfigError(f"base_url_path: must start with '/', got {base_url_path!r}")
    rule = _CHANNEL_ID_SEGMENT.sub("<string:channel_id>", base.rstrip("/"))
    if len(_CHANNEL_ID_SEGMENT.findall(base)) > 1:
        raise ConfigError("base_url_path: at most one <channel_id> segment")
    leftover = rule.replace("<string:channel_id>", "")
    if any(char in leftover for char in "<>{}"):
        raise ConfigError(
            f"base_url_path: the only variable allowed is <channel_id>, "
            f"got {base_url_path!r}"
        )
    return f"{rule}/messages"


def _http_url(name: str, value: str | None) -> None:
    if value is None:
        return
    problem = http_url_problem(value)
    if problem is not None:
        raise ConfigError(f"{name}: {problem}, got {value!r}")
    check_template = check_mo_url if name == "mo_message_url" else check_event_url
    try:
        check_template(name, value)
    except ApiUsageError as exc:
        raise ConfigError(str(exc)) from None


def _positive(_inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value <= 0:
        raise ValueError(f"{attribute.name} must be greater than 0")


def _not_negative(_inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value < 0:
        raise ValueError(f"{attribute.name} must not be negative")


def _not_blank(_inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not value.strip():
        raise ValueError(f"{attribute.name} must not be empty")


@attrs.frozen
class BasicAuthConfig:
    """Credentials clients must send (HTTP Basic) to the messages endpoint."""

    username: str = attrs.field(metadata=_doc("The user name clients must send"))
    password: str = attrs.field(metadata=_doc("The password clients must send"))


@attrs.frozen(kw_only=True)
class MessageApiConfig:
    """Everything ``jb message-api`` can be configured with."""

    connector_name: str = attrs.field(
        validator=_not_blank,
        metadata=_doc(
            "The AMQP connector: consume <name>.inbound and <name>.event, publish "
            "to <name>.outbound. Also the channel_id of sent messages and events"
        ),
    )
    http_bind: str = attrs.field(
        metadata=_doc(
            "Where to serve HTTP: 'host:port', '[v6addr]:port', 'unix:/path' or a "
            "Twisted endpoint description"
        ),
    )
    mo_message_url: str = attrs.field(
        metadata=_doc(
            "The URL inbound messages are POSTed to; user:password@ in it is sent "
            "as HTTP Basic auth"
        ),
    )
    mo_message_url_auth_token: str | None = attrs.field(
        default=None,
        metadata=_doc(
            "Sent as 'Authorization: Token <token>' with inbound messages "
            "(unless the URL carries Basic credentials)"
        ),
    )
    default_event_url: str | None = attrs.field(
        default=None,
        metadata=_doc(
            "Where events go whose message has no stored event_url; unset, such "
            "events are logged and dropped"
        ),
    )
    default_event_auth_token: str | None = attrs.field(
        default=None,
        metadata=_doc("Sent as 'Authorization: Token <token>' to default_event_url"),
    )
    base_url_path: str = attrs.field(
        default="",
        metadata=_doc(
            "Path before '/messages'; '/channels/<channel_id>' serves Junebug's "
            "/channels/<id>/messages/ URLs"
        ),
    )
    transport_type: str = attrs.field(
        default="sms",
        validator=_not_blank,
        metadata=_doc("The transport_type of outbound messages that are not replies"),
    )
    default_from_addr: str | None = attrs.field(
        default=None,
        metadata=_doc(
            "The from address of non-reply messages that give none; unset, they "
            "must give one"
        ),
    )
    allow_expired_replies: bool = attrs.field(
        default=False,
        metadata=_doc(
            "Send a message with both 'to' and an unknown 'reply_to' as a new "
            "message to 'to'"
        ),
    )
    state_cache_class: str = attrs.field(
        default="memory",
        metadata=_doc(
            "Where inbound messages (for replies) and event URLs are kept: "
            "'memory', 'redis' or a dotted class path"
        ),
    )
    state_cache_config: dict[str, Any] = attrs.field(
        factory=dict, metadata=_doc("The options of the state cache class")
    )
    http_ca_file: str | None = attrs.field(
        default=None,
        validator=ca_file_validator,
        metadata=_doc(
            "PEM CA bundle that HTTPS servers' certificates are checked against "
            "(mo_message_url, event URLs); the platform's CAs if unset"
        ),
    )
    request_timeout: float = attrs.field(
        default=240.0,
        validator=_positive,
        metadata=_doc("Seconds allowed for handling one send request"),
    )
    mo_message_url_timeout: float = attrs.field(
        default=10.0,
        validator=_positive,
        metadata=_doc("Seconds allowed for one POST to mo_message_url"),
    )
    event_url_timeout: float = attrs.field(
        default=10.0,
        validator=_positive,
        metadata=_doc("Seconds allowed for one POST of an event"),
    )
    http_retry_max_age: float = attrs.field(
        default=86400.0,
        validator=_positive,
        metadata=_doc(
            "Most seconds a failed POST of an inbound message or event is retried "
            "(through RabbitMQ) before it goes to the dead-letter queue"
        ),
    )
    auth: BasicAuthConfig | None = attrs.field(
        default=None,
        metadata=_doc(
            "If set, send requests must carry these HTTP Basic credentials "
            "(401 otherwise)"
        ),
    )
    amqp: AmqpConfig = attrs.field(
        factory=AmqpConfig, metadata=_doc("Connection to RabbitMQ")
    )
    amqp_url: str | None = attrs.field(
        default=None,
        metadata=_doc(
            "amqp://user:password@host:port/vhost; if set, used instead of 'amqp'"
        ),
    )
    worker_concurrency: int = attrs.field(
        default=20,
        validator=_positive,
        metadata=_doc("Inbound messages and events handled at once (AMQP prefetch)"),
    )
    max_body_size: int = attrs.field(
        default=1_048_576,
        validator=_positive,
        metadata=_doc("Largest send request body accepted, in bytes"),
    )
    header_timeout: float = attrs.field(
        default=30.0,
        validator=_positive,
        metadata=_doc(
            "Seconds a client has to send a request's line and headers, from "
            "connecting or from the previous answer"
        ),
    )
    max_connections: int = attrs.field(
        default=1024,
        validator=_not_negative,
        metadata=_doc("Most connections kept open at once; 0 is unlimited"),
    )
    logfile: str | None = attrs.field(
        default=None, metadata=_doc("The file to log to; stdout only if unset")
    )
    sentry_dsn: str | None = attrs.field(
        default=None, metadata=_doc("The Sentry DSN to send errors to")
    )

    def __attrs_post_init__(self) -> None:
        from junebug.message_api.state_cache import validate_state_cache

        bind_endpoint(self.http_bind)
        messages_route(self.base_url_path)
        _http_url("mo_message_url", self.mo_message_url)
        _http_url("default_event_url", self.default_event_url)
        if self.amqp_url is not None:
            from junebug.amqp.rabbitmq import AmqpSettings

            try:
                AmqpSettings.from_url(self.amqp_url)
            except Exception as exc:
                raise ConfigError(f"amqp_url: {exc}") from exc
        validate_state_cache(self.state_cache_class, self.state_cache_config)

    @property
    def endpoint(self) -> str:
        """The Twisted server endpoint description of ``http_bind``."""
        return bind_endpoint(self.http_bind)

    @property
    def server_limits(self) -> ServerLimits:
        """What the HTTP port accepts."""
        return ServerLimits(
            max_body_size=self.max_body_size,
            header_timeout=self.header_timeout,
            max_connections=self.max_connections,
        )

    @property
    def route(self) -> str:
        """The Klein rule of the messages endpoint (without trailing slash)."""
        return messages_route(self.base_url_path)


def env_var(path: str) -> str:
    """The environment variable of a config path (``amqp.hostname`` ...)."""
    return config_layers.env_var(ENV_PREFIX, path)


def from_environment(environ: Mapping[str, str]) -> dict[str, Any]:
    """The values ``JUNEBUG_MESSAGE_API_*`` variables set, as nested plain data."""
    return config_layers.from_environment(MessageApiConfig, ENV_PREFIX, environ)


def merge(*layers: Mapping[str, Any]) -> dict[str, Any]:
    """Merge layers left to right; ``amqp`` and ``auth`` key by key."""
    return config_layers.merge(MessageApiConfig, *layers)


_KNOWN_KEYS = frozenset(attrs.fields_dict(MessageApiConfig))


def build_config(*layers: Mapping[str, Any]) -> MessageApiConfig:
    """Validate merged layers into a MessageApiConfig.

    Unknown top-level keys are refused (a misspelt option would otherwise be
    silently ignored); so are unknown keys of ``amqp`` and ``auth``.
    """
    data = merge(*layers)
    unknown = sorted(set(data) - _KNOWN_KEYS)
    if unknown:
        raise ConfigError(f"config: unknown option(s): {', '.join(unknown)}")
    try:
        return structure(data, MessageApiConfig, path="config", forbid_extra_keys=True)
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(str(exc)) from exc


def load_config(
    path: str | None = None,
    environ: Mapping[str, str] | None = None,
    cli: Mapping[str, Any] | None = None,
) -> MessageApiConfig:
    """Defaults < file (``path`` or ``$JUNEBUG_MESSAGE_API_CONFIG_FILE``) <
    environment < explicit CLI flags."""
    import os

    environ = os.environ if environ is None else environ
    path = path or environ.get(ENV_CONFIG_FILE) or None
    file_layer = config_layers.load_file(path) if path else {}
    return build_config(file_layer, from_environment(environ), cli or {})


def check_endpoint(description: str) -> None:
    """Raise ConfigError if ``description`` is not a server endpoint description."""
    try:
        serverFromString(cast(Any, None), description)
    except Exception as exc:
        raise ConfigError(
            f"http_bind: not a server endpoint description ({description!r}): {exc}"
        ) from exc
