"""``jb message-api``: parse arguments, load config, run the message API.

Every option of :class:`~junebug.message_api.config.MessageApiConfig` has a flag
named after it (``connector_name`` → ``--connector-name``); ``amqp`` and
``auth`` fields are ``--amqp-<field>`` and ``--auth-<field>`` (plus ``jb``'s own
``--amqp-host`` and ``--amqp-user``).  ``state_cache_config`` takes JSON or
YAML.  A flag that is not given never overrides the file or the environment.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from typing import Any

import attrs
import yaml

from junebug.cli import _bool_text, fail, install_reactor
from junebug.config import AmqpConfig
from junebug.errors import ConfigError
from junebug.message_api.config import (
    SECTIONS,
    BasicAuthConfig,
    MessageApiConfig,
    env_var,
    load_config,
)

PROG = "jb message-api"
#: ``jb``'s names for two AMQP flags, kept as aliases.
_AMQP_ALIASES = {"hostname": ["--amqp-host"], "username": ["--amqp-user"]}
#: ``amqp`` fields the message API does not use (``worker_concurrency`` is its
#: prefetch); accepted in files for ``jb`` compatibility, but given no flag.
_AMQP_UNUSED = frozenset({"db", "prefetch"})


def _mapping(value: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(value)
    except yaml.YAMLError:
        raise argparse.ArgumentTypeError(f"not JSON or YAML: {value!r}") from None
    if not isinstance(data, dict):
        raise argparse.ArgumentTypeError(f"expected a mapping, got {value!r}")
    return data


def _kind(field: attrs.Attribute[Any]) -> dict[str, Any]:
    """argparse keywords for a field, from its declared type."""
    kind = field.type  # a string, or the type once cattrs has resolved it
    text = kind.__name__ if isinstance(kind, type) else str(kind)
    if text.startswith("dict"):
        return {"type": _mapping, "metavar": "JSON"}
    if text == "bool":
        return {"type": _bool_text, "nargs": "?", "const": True, "metavar": "BOOL"}
    if text == "int":
        return {"type": int}
    if text == "float":
        return {"type": float}
    return {"type": str}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _help(field: attrs.Attribute[Any], path: str) -> str:
    default: Any = field.default
    shown = ""
    if default is not attrs.NOTHING and not hasattr(default, "factory"):
        shown = (
            f" (default: {default!r})" if default == "" else f" (default: {default})"
        )
    return f"{field.metadata.get('doc', '')}{shown} [env {env_var(path)}]".replace(
        "%", "%%"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "The Junebug message API: Junebug's HTTP message API (as RapidPro's "
            "Junebug channel uses it) over one AMQP connector"
        ),
        argument_default=argparse.SUPPRESS,
    )
    parser.add_argument(
        "--config",
        "-c",
        dest="config_filename",
        help="Path to a YAML config file [env JUNEBUG_MESSAGE_API_CONFIG_FILE]",
    )
    for field in attrs.fields(MessageApiConfig):
        if field.name in SECTIONS:
            continue
        parser.add_argument(
            _flag(field.name),
            dest=field.name,
            help=_help(field, field.name),
            **_kind(field),
        )
    for section, cls in (("amqp", AmqpConfig), ("auth", BasicAuthConfig)):
        for field in attrs.fields(cls):
            if section == "amqp" and field.name in _AMQP_UNUSED:
                continue
            path = f"{section}.{field.name}"
            names = [_flag(f"{section}_{field.name}")]
            if section == "amqp":
                names += _AMQP_ALIASES.get(field.name, [])
            parser.add_argument(
                *names,
                dest=path,
                metavar=field.name.upper(),
                help=_help(field, path),
                **_kind(field),
            )
    return parser


def cli_layer(namespace: argparse.Namespace) -> tuple[str | None, dict[str, Any]]:
    """The config file path and the explicitly given options as nested data."""
    values = dict(vars(namespace))
    path = values.pop("config_filename", None)
    layer: dict[str, Any] = {}
    for dest, value in values.items():
        section, dot, name = dest.partition(".")
        if dot:
            layer.setdefault(section, {})[name] = value
        else:
            layer[dest] = value
    return path, layer


def parse_config(argv: Sequence[str]) -> MessageApiConfig:
    """Parse ``argv`` (after ``message-api``) into a config, or exit with code 2."""
    namespace = build_parser().parse_args(list(argv))
    path, layer = cli_layer(namespace)
    try:
        return load_config(path, os.environ, layer)
    except ConfigError as exc:
        fail(str(exc))


def main(argv: Sequence[str]) -> None:
    """Entry point of ``jb message-api`` (``argv`` without the subcommand)."""
    config = parse_config(argv)
    reactor = install_reactor(os.environ)
    from junebug.config import JunebugConfig
    from junebug.logging_setup import setup_logging

    setup_logging(
        JunebugConfig(logfile=config.logfile, sentry_dsn=config.sentry_dsn),
        os.environ,
    )
    from twisted.internet import task

    from junebug.message_api.service import run

    task.react(run, (config,), _reactor=reactor)
