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

from junebug.command import fail, install_reactor
from junebug.config_flags import CONFIG_FILE_DEST, add_config_flags, cli_layer
from junebug.errors import ConfigError
from junebug.message_api.config import ENV_PREFIX, MessageApiConfig, load_config

__all__ = ["PROG", "build_parser", "cli_layer", "main", "parse_config"]

PROG = "jb message-api"
#: ``jb``'s names for two AMQP flags, kept as aliases.
_NAMES = {
    "amqp.hostname": ("--amqp-hostname", "--amqp-host"),
    "amqp.username": ("--amqp-username", "--amqp-user"),
}
#: ``amqp`` fields the message API does not use (``worker_concurrency`` is its
#: prefetch); accepted in files for ``jb`` compatibility, but given no flag.
_NO_FLAG = frozenset({"amqp.db", "amqp.prefetch"})


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
        dest=CONFIG_FILE_DEST,
        help="Path to a YAML config file [env JUNEBUG_MESSAGE_API_CONFIG_FILE]",
    )
    add_config_flags(
        parser, MessageApiConfig, env_prefix=ENV_PREFIX, names=_NAMES, skip=_NO_FLAG
    )
    return parser


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
