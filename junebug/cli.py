"""The ``jb`` command: parse arguments, load config, run Junebug.

This is the only module that touches the global reactor.  Options keep the
original's long and short names.  Precedence is defaults < config file <
``JUNEBUG_*`` environment < flags given on the command line (a flag that is not
given never overrides the file, unlike the original).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from junebug.errors import ConfigError

REACTORS = {
    "SELECT": "twisted.internet.selectreactor",
    "POLL": "twisted.internet.pollreactor",
    "KQUEUE": "twisted.internet.kqreactor",
    "WFMO": "twisted.internet.win32eventreactor",
    "IOCP": "twisted.internet.iocpreactor.reactor",
    "EPOLL": "twisted.internet.epollreactor",
}


def _bool_text(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")


def _mapping(value: str) -> tuple[str, str]:
    name, sep, path = value.partition(":")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"expected 'type:python.Class', got {value!r}")
    return name, path


def _plugin(value: str) -> dict[str, Any]:
    try:
        data = json.loads(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a JSON object: {value!r}") from None
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        raise argparse.ArgumentTypeError("a plugin needs a JSON object with a 'type'")
    return data


#: (long, short, dest, type/action, help).  ``dest`` is the config path.
OPTIONS: list[tuple[str, str | None, str, Any, str]] = [
    ("--interface", "-i", "interface", str, "The interface to expose the API on"),
    ("--port", "-p", "port", int, "The port to expose the API on"),
    ("--log-file", "-l", "logfile", str, "The file to log to"),
    ("--sentry-dsn", "-sd", "sentry_dsn", str, "The DSN to send errors to"),
    ("--redis-host", "-redish", "redis.host", str, "Redis host"),
    ("--redis-port", "-redisp", "redis.port", int, "Redis port"),
    ("--redis-db", "-redisdb", "redis.db", int, "Redis database number"),
    ("--redis-password", "-redispass", "redis.password", str, "Redis password"),
    ("--redis-key-prefix", None, "redis.key_prefix", str, "Prefix for Redis keys"),
    ("--amqp-host", "-amqph", "amqp.hostname", str, "AMQP host"),
    ("--amqp-vhost", "-amqpvh", "amqp.vhost", str, "AMQP virtual host"),
    ("--amqp-port", "-amqpp", "amqp.port", int, "AMQP port"),
    ("--amqp-user", "-amqpu", "amqp.username", str, "AMQP user"),
    ("--amqp-password", "-amqppass", "amqp.password", str, "AMQP password"),
    (
        "--inbound-message-ttl",
        "-ittl",
        "inbound_message_ttl",
        int,
        "Seconds allowed to reply to a message (default 600)",
    ),
    (
        "--outbound-message-ttl",
        "-ottl",
        "outbound_message_ttl",
        int,
        "Seconds events are accepted for a message (default 172800)",
    ),
    ("--metric-window", "-mw", "metric_window", float, "Seconds per metrics bucket"),
    ("--logging-path", "-lp", "logging_path", str, "Directory for channel log files"),
    ("--log-rotate-size", "-lrs", "log_rotate_size", int, "Bytes per log file"),
    ("--max-log-files", "-mlf", "max_log_files", int, "Log files kept; 0 unlimited"),
    ("--max-logs", "-ml", "max_logs", int, "Most log entries the API returns"),
    (
        "--rabbitmq-management-interface",
        "-rmi",
        "rabbitmq_management_interface",
        str,
        "host:port of the RabbitMQ management API, checked by /health",
    ),
    ("--max-body-size", None, "max_body_size", int, "Largest accepted request body"),
    ("--api-token", None, "api_token", str, "Require this token on the API"),
    ("--api-username", None, "api_username", str, "Accept Basic auth with this user"),
    ("--api-password", None, "api_password", str, "Password for --api-username"),
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jb",
        description=(
            "Junebug. A system for managing text messaging transports via a "
            "RESTful HTTP interface"
        ),
        argument_default=argparse.SUPPRESS,
    )
    parser.add_argument(
        "--config", "-c", dest="config_filename", help="Path to a YAML config file"
    )
    for long, short, dest, kind, text in OPTIONS:
        names = [long, short] if short else [long]
        parser.add_argument(*names, dest=dest, type=kind, help=text)
    parser.add_argument(
        "--allow-expired-replies",
        "-aer",
        dest="allow_expired_replies",
        action="store_const",
        const=True,
        help="Send replies whose inbound message expired as new messages to 'to'",
    )
    parser.add_argument(
        "--channels",
        "-ch",
        dest="channels",
        action="append",
        type=_mapping,
        help="Add a channel type, as 'type:python.Class' (repeatable)",
    )
    parser.add_argument(
        "--replace-channels",
        "-rch",
        dest="replace_channels",
        nargs="?",
        const=True,
        type=_bool_text,
        help="Replace the default channel types with --channels",
    )
    parser.add_argument(
        "--routers",
        dest="routers",
        action="append",
        type=_mapping,
        help="Add a router type, as 'type:python.Class' (repeatable)",
    )
    parser.add_argument(
        "--replace-routers",
        dest="replace_routers",
        nargs="?",
        const=True,
        type=_bool_text,
        help="Replace the default router types with --routers",
    )
    parser.add_argument(
        "--plugin",
        "-pl",
        dest="plugins",
        action="append",
        type=_plugin,
        help="Add a plugin, as a JSON object with a 'type' class path (repeatable)",
    )
    parser.add_argument(
        "--embedded",
        dest="embedded",
        action="store_const",
        const=True,
        help="Use an in-memory store and broker (nothing persists)",
    )
    return parser


def cli_layer(namespace: argparse.Namespace) -> tuple[str | None, dict[str, Any]]:
    """The config file path and the explicitly given options as nested data."""
    values = vars(namespace)
    path = values.pop("config_filename", None)
    layer: dict[str, Any] = {}
    for dest, value in values.items():
        if dest in ("channels", "routers"):
            value = dict(value)
        section, dot, name = dest.partition(".")
        if dot:
            layer.setdefault(section, {})[name] = value
        else:
            layer[dest] = value
    return path, layer


def fail(message: str) -> NoReturn:
    """Report a usage or configuration error in one line and exit with code 2."""
    sys.stderr.write(f"jb: error: {message}\n")
    raise SystemExit(2)


def install_reactor(environ: dict[str, str] | os._Environ[str]) -> Any:
    """Install the reactor ``JUNEBUG_REACTOR`` names, then return the reactor."""
    choice = environ.get("JUNEBUG_REACTOR", "DEFAULT").upper() or "DEFAULT"
    if choice != "DEFAULT":
        if choice not in REACTORS:
            fail(f"Unsupported JUNEBUG_REACTOR setting {choice!r}")
        module = __import__(REACTORS[choice], fromlist=["install"])
        try:
            module.install()
        except Exception as exc:
            fail(f"Cannot use the {choice} reactor here: {exc}")
    from twisted.internet import reactor

    return reactor


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of ``jb``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["message-api"]:
        from junebug.message_api.cli import main as message_api_main

        message_api_main(args[1:])
        return
    namespace = build_parser().parse_args(args)
    path, layer = cli_layer(namespace)
    from junebug.config import load_config

    try:
        config = load_config(path, os.environ, layer)
    except ConfigError as exc:
        fail(str(exc))
    reactor = install_reactor(os.environ)
    from junebug.transports.registry import TransportRegistry

    try:
        TransportRegistry(config.channels, config.replace_channels).check()
    except ConfigError as exc:
        fail(str(exc))
    from junebug.logging_setup import setup_logging

    setup_logging(config, os.environ)
    from twisted.internet import task

    from junebug.runner import run

    task.react(run, (config,), _reactor=reactor)
