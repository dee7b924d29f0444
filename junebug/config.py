"""Junebug's configuration: typed, layered defaults < file < environment < CLI.

The field names are the original's (config files are a user contract).  ``redis``
and ``amqp`` are nested classes rather than dicts.  Every field carries a ``doc``
in its metadata; the CLI and the environment variable names are generated from
the fields, so there is one declaration per option.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import attrs
import yaml

from junebug.converter import structure, unstructure
from junebug.errors import ConfigError


def _doc(text: str, **extra: Any) -> dict[str, Any]:
    return {"doc": text, **extra}


@attrs.frozen
class RedisConfig:
    """Connection to Redis."""

    host: str = attrs.field(default="localhost", metadata=_doc("Redis host"))
    port: int = attrs.field(default=6379, metadata=_doc("Redis port"))
    db: int = attrs.field(default=0, metadata=_doc("Redis database number"))
    password: str | None = attrs.field(default=None, metadata=_doc("Redis password"))
    key_prefix: str | None = attrs.field(
        default=None, metadata=_doc("Prefix (joined with ':') for every key")
    )


@attrs.frozen
class AmqpConfig:
    """Connection to RabbitMQ."""

    hostname: str = attrs.field(default="127.0.0.1", metadata=_doc("AMQP host"))
    port: int = attrs.field(default=5672, metadata=_doc("AMQP port"))
    vhost: str = attrs.field(default="/", metadata=_doc("AMQP virtual host"))
    username: str = attrs.field(default="guest", metadata=_doc("AMQP user"))
    password: str = attrs.field(default="guest", metadata=_doc("AMQP password"))
    heartbeat: int = attrs.field(default=30, metadata=_doc("AMQP heartbeat (s)"))
    db: int = attrs.field(default=0, metadata=_doc("Unused; kept for old files"))
    prefetch: int = attrs.field(
        default=20, metadata=_doc("Unacknowledged messages per consumer")
    )


def _non_negative(_inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and value < 0:
        raise ValueError(f"{attribute.name} must not be negative")


def _positive(_inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value <= 0:
        raise ValueError(f"{attribute.name} must be greater than 0")


@attrs.frozen
class JunebugConfig:
    """Everything ``jb`` can be configured with."""

    interface: str = attrs.field(
        default="localhost", metadata=_doc("The interface to expose the API on")
    )
    port: int = attrs.field(
        default=8080,
        validator=_non_negative,
        metadata=_doc("The port to expose the API on"),
    )
    logfile: str | None = attrs.field(
        default=None, metadata=_doc("The file to log to; stdout only if unset")
    )
    sentry_dsn: str | None = attrs.field(
        default=None, metadata=_doc("The Sentry DSN to send errors to")
    )
    redis: RedisConfig = attrs.field(factory=RedisConfig)
    amqp: AmqpConfig = attrs.field(factory=AmqpConfig)
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
        factory=dict, metadata=_doc("Extra channel types: type -> dotted class path")
    )
    replace_channels: bool = attrs.field(
        default=False, metadata=_doc("Replace the default channel types")
    )
    routers: dict[str, str] = attrs.field(
        factory=dict, metadata=_doc("Extra router types: type -> dotted class path")
    )
    replace_routers: bool = attrs.field(
        default=False, metadata=_doc("Replace the default router types")
    )
    plugins: list[dict[str, Any]] = attrs.field(
        factory=list, metadata=_doc("Plugin configs, each with a 'type' class path")
    )
    metric_window: float = attrs.field(
        default=10.0,
        validator=_positive,
        metadata=_doc("Seconds per metrics bucket"),
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
    max_body_size: int = attrs.field(
        default=1_048_576,
        validator=_positive,
        metadata=_doc("Largest request body the API accepts, in bytes"),
    )

    def __attrs_post_init__(self) -> None:
        if self.max_log_files == 0:
            object.__setattr__(self, "max_log_files", None)


#: Environment variables are ``JUNEBUG_`` + the field path in capitals, with
#: nested fields joined by ``_``: ``JUNEBUG_PORT``, ``JUNEBUG_REDIS_HOST``.
ENV_PREFIX = "JUNEBUG_"


def _field_types(cls: type[Any]) -> dict[str, attrs.Attribute[Any]]:
    return {f.name: f for f in attrs.fields(cls)}


def _coerce_env(value: str, field: attrs.Attribute[Any], path: str) -> Any:
    kind = field.type
    text = kind.__name__ if isinstance(kind, type) else str(kind)
    if "dict" in text or "list" in text:
        try:
            return yaml.safe_load(value)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML/JSON") from exc
    if "bool" in text:
        lowered = value.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off", ""):
            return False
        raise ConfigError(f"{path}: expected a boolean, got {value!r}")
    if "int" in text and "None" in text and value.strip() == "":
        return None
    if text.startswith("int"):
        try:
            return int(value)
        except ValueError:
            raise ConfigError(f"{path}: expected an integer, got {value!r}") from None
    if text.startswith("float"):
        try:
            return float(value)
        except ValueError:
            raise ConfigError(f"{path}: expected a number, got {value!r}") from None
    if "None" in text and value == "":
        return None
    return value


def from_environment(environ: Mapping[str, str]) -> dict[str, Any]:
    """The config values set by ``JUNEBUG_*`` variables, as nested plain data."""
    result: dict[str, Any] = {}
    for name, field in _field_types(JunebugConfig).items():
        if name in ("redis", "amqp"):
            continue
        var = ENV_PREFIX + name.upper()
        if var in environ:
            result[name] = _coerce_env(environ[var], field, name)
    for section, cls in (("redis", RedisConfig), ("amqp", AmqpConfig)):
        for name, field in _field_types(cls).items():
            var = f"{ENV_PREFIX}{section.upper()}_{name.upper()}"
            if var in environ:
                result.setdefault(section, {})[name] = _coerce_env(
                    environ[var], field, f"{section}.{name}"
                )
    return result


def load_file(path: str) -> dict[str, Any]:
    """Read a YAML config file into plain data."""
    try:
        with open(path, encoding="utf-8") as handle:
            data = yaml.safe_load(handle)
    except OSError as exc:
        raise ConfigError(f"config: cannot read {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"config: {path} is not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config: {path} must hold a mapping")
    return data


def merge(*layers: Mapping[str, Any]) -> dict[str, Any]:
    """Merge layers left to right; ``redis``/``amqp`` merge key by key.

    ``plugins`` accumulate (later layers append), as the original appended CLI
    plugins to the file's list.  Other keys are replaced wholesale.
    """
    result: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            if key in ("redis", "amqp") and not isinstance(value, Mapping):
                raise ConfigError(f"config.{key}: expected a mapping")
            if key in ("redis", "amqp"):
                merged = dict(result.get(key) or {})
                merged.update(value)
                result[key] = merged
            elif key == "plugins" and isinstance(value, list):
                result[key] = [*result.get(key, []), *value]
            else:
                result[key] = value
    return result


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
    file_layer = load_file(path) if path else {}
    env_layer = from_environment(os.environ if environ is None else environ)
    return build_config(file_layer, env_layer, cli or {})


def as_dict(config: JunebugConfig) -> dict[str, Any]:
    """Plain data for a config (what plugins receive as ``junebug_config``)."""
    data: dict[str, Any] = unstructure(config)
    return data
