"""The ``jb`` command line: every option, precedence, and clean failures."""

from __future__ import annotations

import contextlib
import io
import shutil
import subprocess
import sys
import tempfile
from typing import Any

import attrs
from twisted.trial.unittest import SynchronousTestCase

from junebug.cli import build_parser, cli_layer
from junebug.config import (
    AmqpConfig,
    ClusterConfig,
    JunebugConfig,
    RedisConfig,
    load_config,
)
from junebug.errors import ConfigError
from junebug.tests.support.process import free_port

#: (argv, config path, expected value) for every documented option.
OPTIONS: list[tuple[list[str], str, Any]] = [
    (["--interface", "0.0.0.0"], "interface", "0.0.0.0"),
    (["-i", "0.0.0.0"], "interface", "0.0.0.0"),
    (["--port", "9000"], "port", 9000),
    (["-p", "9000"], "port", 9000),
    (["--log-file", "x.log"], "logfile", "x.log"),
    (["-l", "x.log"], "logfile", "x.log"),
    (["--sentry-dsn", "http://k@s/1"], "sentry_dsn", "http://k@s/1"),
    (["-sd", "http://k@s/1"], "sentry_dsn", "http://k@s/1"),
    (["--startup-timeout", "30"], "startup_timeout", 30.0),
    (["--shutdown-timeout", "12.5"], "shutdown_timeout", 12.5),
    (["--redis-host", "r"], "redis.host", "r"),
    (["-redish", "r"], "redis.host", "r"),
    (["--redis-port", "7"], "redis.port", 7),
    (["-redisp", "7"], "redis.port", 7),
    (["--redis-db", "3"], "redis.db", 3),
    (["-redisdb", "3"], "redis.db", 3),
    (["--redis-password", "pw"], "redis.password", "pw"),
    (["-redispass", "pw"], "redis.password", "pw"),
    (["--amqp-host", "a"], "amqp.hostname", "a"),
    (["-amqph", "a"], "amqp.hostname", "a"),
    (["--amqp-vhost", "/v"], "amqp.vhost", "/v"),
    (["-amqpvh", "/v"], "amqp.vhost", "/v"),
    (["-amqpv", "/v"], "amqp.vhost", "/v"),
    (["--amqp-port", "6"], "amqp.port", 6),
    (["-amqpp", "6"], "amqp.port", 6),
    (["--amqp-user", "u"], "amqp.username", "u"),
    (["-amqpu", "u"], "amqp.username", "u"),
    (["--amqp-password", "p"], "amqp.password", "p"),
    (["-amqppass", "p"], "amqp.password", "p"),
    (["--inbound-message-ttl", "5"], "inbound_message_ttl", 5),
    (["-ittl", "5"], "inbound_message_ttl", 5),
    (["--outbound-message-ttl", "6"], "outbound_message_ttl", 6),
    (["-ottl", "6"], "outbound_message_ttl", 6),
    (["--allow-expired-replies"], "allow_expired_replies", True),
    (["-aer"], "allow_expired_replies", True),
    (["--channels", "foo:a.B"], "channels", {"foo": "a.B"}),
    (["-ch", "foo:a.B", "-ch", "bar:c.D"], "channels", {"foo": "a.B", "bar": "c.D"}),
    (["--replace-channels"], "replace_channels", True),
    (["-rch", "false"], "replace_channels", False),
    (["--routers", "r:a.B"], "routers", {"r": "a.B"}),
    (["--replace-routers", "true"], "replace_routers", True),
    (["--plugin", '{"type": "a.B"}'], "plugins", [{"type": "a.B"}]),
    (["-pl", '{"type": "a.B"}'], "plugins", [{"type": "a.B"}]),
    (["--metric-window", "2.5"], "metric_window", 2.5),
    (["-mw", "2"], "metric_window", 2.0),
    (["--logging-path", "/tmp/l"], "logging_path", "/tmp/l"),
    (["-lp", "/tmp/l"], "logging_path", "/tmp/l"),
    (["--log-rotate-size", "10"], "log_rotate_size", 10),
    (["-lrs", "10"], "log_rotate_size", 10),
    (["--max-log-files", "0"], "max_log_files", None),
    (["-mlf", "3"], "max_log_files", 3),
    (["--max-logs", "7"], "max_logs", 7),
    (["-ml", "7"], "max_logs", 7),
    (
        ["--rabbitmq-management-interface", "h:1"],
        "rabbitmq_management_interface",
        "h:1",
    ),
    (["-rmi", "h:1"], "rabbitmq_management_interface", "h:1"),
    (["--embedded"], "embedded", True),
    (["--workers", "3"], "workers", 3),
    (["--workers", "auto"], "workers", "auto"),
]

#: The long options of the original ``jb`` (besides ``--help``).
ORIGINAL_LONG_OPTIONS = [
    "--interface",
    "--port",
    "--log-file",
    "--sentry-dsn",
    "--redis-host",
    "--redis-port",
    "--redis-db",
    "--redis-password",
    "--amqp-host",
    "--amqp-vhost",
    "--amqp-port",
    "--amqp-user",
    "--amqp-password",
    "--inbound-message-ttl",
    "--outbound-message-ttl",
    "--allow-expired-replies",
    "--channels",
    "--replace-channels",
    "--routers",
    "--replace-routers",
    "--plugin",
    "--metric-window",
    "--logging-path",
    "--log-rotate-size",
    "--max-log-files",
    "--max-logs",
    "--rabbitmq-management-interface",
]

DEFAULTS: dict[str, Any] = {
    "interface": "localhost",
    "port": 8080,
    "logfile": None,
    "sentry_dsn": None,
    "redis.host": "localhost",
    "redis.port": 6379,
    "redis.db": 0,
    "redis.password": None,
    "amqp.hostname": "127.0.0.1",
    "amqp.vhost": "/",
    "amqp.port": 5672,
    "amqp.username": "guest",
    "amqp.password": "guest",
    "inbound_message_ttl": 600,
    "outbound_message_ttl": 172800,
    "allow_expired_replies": False,
    "channels": {},
    "replace_channels": False,
    "routers": {},
    "replace_routers": False,
    "plugins": [],
    "metric_window": 10.0,
    "logging_path": "logs/",
    "log_rotate_size": 1000000,
    "max_log_files": 5,
    "max_logs": 100,
    "rabbitmq_management_interface": None,
}


def value_at(config: JunebugConfig, path: str) -> Any:
    value: Any = config
    for part in path.split("."):
        value = getattr(value, part)
    return value


def parse(argv: list[str], environ: dict[str, str] | None = None) -> JunebugConfig:
    path, layer = cli_layer(build_parser().parse_args(argv))
    return load_config(path, environ or {}, layer)


def write_yaml(text: str) -> str:
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as handle:
        handle.write(text)
        return handle.name


class OptionTests(SynchronousTestCase):
    def test_defaults(self) -> None:
        """With no options every field has the documented default."""
        config = parse([])
        for path, expected in DEFAULTS.items():
            self.assertEqual(value_at(config, path), expected, path)

    def test_every_option_long_and_short(self) -> None:
        """Each documented option sets its field, by long and by short name."""
        for argv, path, expected in OPTIONS:
            self.assertEqual(value_at(parse(argv), path), expected, argv)

    def test_file_then_env_then_flags(self) -> None:
        """Defaults < file < environment < flags; absent flags never override."""
        path = write_yaml(
            "port: 9001\nallow_expired_replies: true\nredis:\n  host: filehost\n"
            "  port: 1111\nplugins:\n  - type: a.File\nlogging_path: /file\n"
        )
        config = parse(["-c", path])
        self.assertEqual(config.port, 9001)
        self.assertTrue(config.allow_expired_replies)
        self.assertEqual((config.redis.host, config.redis.port), ("filehost", 1111))
        config = parse(
            ["-c", path], {"JUNEBUG_PORT": "9002", "JUNEBUG_REDIS_PORT": "2"}
        )
        self.assertEqual((config.port, config.redis.port), (9002, 2))
        self.assertEqual(config.redis.host, "filehost")
        config = parse(
            ["-c", path, "-p", "9003", "--plugin", '{"type": "a.Cli"}'],
            {"JUNEBUG_PORT": "9002"},
        )
        self.assertEqual(config.port, 9003)
        self.assertEqual(config.plugins, [{"type": "a.File"}, {"type": "a.Cli"}])
        self.assertEqual(config.logging_path, "/file")

    def test_every_field_has_a_flag(self) -> None:
        """Every config field (but the unused ``amqp.db``) has a ``jb`` flag
        generated from it, so a new field needs no CLI code."""
        dests = {action.dest for action in build_parser()._actions}
        for field in attrs.fields(JunebugConfig):
            sections = {
                "redis": RedisConfig,
                "amqp": AmqpConfig,
                "cluster": ClusterConfig,
            }
            if field.name in sections:
                section = sections[field.name]
                paths = [f"{field.name}.{sub.name}" for sub in attrs.fields(section)]
            else:
                paths = [field.name]
            for path in paths:
                if path != "amqp.db":
                    self.assertIn(path, dests)

    def test_help_texts_come_from_the_fields(self) -> None:
        """A flag's help is its field's doc, default and environment variable."""
        actions = {action.dest: action for action in build_parser()._actions}
        for dest, field in (
            ("port", attrs.fields(JunebugConfig).port),
            ("redis.key_prefix", attrs.fields(RedisConfig).key_prefix),
        ):
            help_text = actions[dest].help or ""
            self.assertIn(field.metadata["doc"].replace("%", "%%"), help_text)
        self.assertIn("(default: 8080) [env JUNEBUG_PORT]", actions["port"].help)

    def test_original_abbreviations_still_work(self) -> None:
        """Every abbreviation of an original long option that was unambiguous
        among the original's options still means that option, although newer
        options (``--amqp-heartbeat``, ``--startup-channels``) share prefixes;
        so does the documented ``-amqpv``."""
        samples = {argv[0]: (argv[1:], path) for argv, path, _ in OPTIONS}
        every = [*ORIGINAL_LONG_OPTIONS, "--config", "--help"]
        for name in ORIGINAL_LONG_OPTIONS:
            rest, path = samples[name]
            for end in range(3, len(name) + 1):
                prefix = name[:end]
                if [other for other in every if other.startswith(prefix)] != [name]:
                    continue
                namespace = build_parser().parse_args([prefix, *rest])
                self.assertIn(path, vars(namespace), prefix)
        self.assertEqual(parse(["-amqpv", "/v"]).amqp.vhost, "/v")
        self.assertEqual(parse(["--amqp-h", "h"]).amqp.hostname, "h")
        self.assertEqual(parse(["--s", "http://k@s/1"]).sentry_dsn, "http://k@s/1")
        with (
            contextlib.redirect_stdout(io.StringIO()) as out,
            self.assertRaises(SystemExit) as caught,
        ):
            build_parser().parse_args(["--h"])
        self.assertEqual(caught.exception.code, 0)
        self.assertIn("usage: jb", out.getvalue())

    def test_new_flags(self) -> None:
        """Fields the hand-written table had missed now have flags too."""
        config = parse(
            [
                "--amqp-heartbeat",
                "5",
                "--amqp-prefetch",
                "3",
                "--http-retry-max-age",
                "60",
                "--startup-channels",
                '{"id": "a", "type": "telnet"}',
                "--startup-channels",
                '{"id": "b", "type": "telnet"}',
                "--embedded",
                "false",
            ]
        )
        self.assertEqual((config.amqp.heartbeat, config.amqp.prefetch), (5, 3))
        self.assertEqual(config.http_retry_max_age, 60.0)
        self.assertEqual([c["id"] for c in config.startup_channels], ["a", "b"])
        self.assertFalse(config.embedded)

    def test_unknown_yaml_keys_ignored(self) -> None:
        """Unknown top-level keys in a config file are ignored, as before."""
        path = write_yaml("something_else: 1\nport: 9001\n")
        self.assertEqual(parse(["-c", path]).port, 9001)


def run_jb(
    *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    import os

    environ = dict(os.environ)
    environ.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "junebug", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=environ,
    )


class FailureTests(SynchronousTestCase):
    def test_bad_config_one_line_exit_2(self) -> None:
        """Bad config names the field in one line, exits 2, no traceback."""
        path = write_yaml("port: not-a-port\n")
        result = run_jb("-c", path)
        self.assertEqual(result.returncode, 2)
        lines = result.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, result.stderr)
        self.assertIn("config.port", lines[0])
        self.assertNotIn("Traceback", result.stderr)

    def test_bad_values(self) -> None:
        """Wrong types from flags, files and the environment exit 2 with a reason."""
        cases = [
            (("-p", "x"), {}, "--port"),
            (("--metric-window", "0"), {}, "metric_window"),
            ((), {"JUNEBUG_PORT": "abc"}, "port"),
            ((), {"JUNEBUG_REACTOR": "NOPE"}, "Unsupported JUNEBUG_REACTOR setting"),
            (("-c", "/nonexistent/jb.yaml"), {}, "cannot read"),
            (("-c", write_yaml("redis: [1]\n")), {}, "redis"),
            (("--channels", "bad:no.such.Module"), {}, "channels.bad"),
            (("--log-format", "xml"), {}, "log_format must be one of text, json"),
        ]
        for args, env, expected in cases:
            result = run_jb(*args, env=env)
            self.assertEqual(result.returncode, 2, (args, env, result.stderr))
            self.assertIn(expected, result.stderr)
            self.assertNotIn("Traceback", result.stderr)

    def test_port_out_of_range_exits_2(self) -> None:
        """``port: 99999`` in a file, a variable or a flag exits 2, as documented."""
        cases = [
            (("-c", write_yaml("port: 99999\n")), {}),
            ((), {"JUNEBUG_PORT": "99999"}),
            (("-p", "99999"), {}),
        ]
        for args, env in cases:
            result = run_jb(*args, env=env)
            self.assertEqual(result.returncode, 2, (args, env, result.stderr))
            self.assertIn("99999 is not a TCP port number", result.stderr)
            self.assertEqual(len(result.stderr.strip().splitlines()), 1)

    def test_backend_ports_checked(self) -> None:
        """Redis and AMQP ports must be 1-65535; the API port may be 0 (any)."""
        for argv in (
            ["--redis-port", "65536"],
            ["--amqp-port", "0"],
            ["--port", "-1"],
            ["--port", "65536"],
        ):
            with self.assertRaises(ConfigError, msg=argv) as caught:
                parse(argv)
            self.assertIn("is not a TCP port number", str(caught.exception))
        self.assertEqual(parse(["--port", "0"]).port, 0)

    def test_handoff_timeout_is_checked(self) -> None:
        """A negative or non-number handoff_timeout is a clear config error;
        0 (always publish) is allowed."""
        for argv in (["--handoff-timeout", "-1"], ["--handoff-timeout", "soon"]):
            with self.assertRaises((ConfigError, SystemExit), msg=argv):
                parse(argv)
        with self.assertRaises(ConfigError) as caught:
            parse(["--handoff-timeout", "-0.5"])
        self.assertIn("handoff_timeout", str(caught.exception))
        self.assertEqual(parse(["--handoff-timeout", "0"]).handoff_timeout, 0)
        self.assertEqual(parse([]).handoff_timeout, 0.25)

    def test_workers_with_embedded_exits_2(self) -> None:
        """More than one worker cannot share the in-memory backends: one
        line, exit 2, and nothing started."""
        for args, env in (
            (("--workers", "2", "--embedded"), {}),
            (("--embedded",), {"JUNEBUG_WORKERS": "2"}),
            (("-c", write_yaml("workers: 3\nembedded: true\n")), {}),
        ):
            result = run_jb(*args, env=env)
            self.assertEqual(result.returncode, 2, (args, result.stderr))
            lines = result.stderr.strip().splitlines()
            self.assertEqual(len(lines), 1, result.stderr)
            self.assertIn("cannot share the in-memory store and broker", lines[0])
            self.assertNotIn("supervisor", result.stdout)

    def test_workers_on_a_port_in_use_exit_1(self) -> None:
        """The supervisor binds the port before starting any worker: a port
        in use ends it with status 1 and one line naming the address."""
        import socket

        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            result = run_jb(
                *("--workers", "2", "--interface", "127.0.0.1", "--port", str(port))
            )
        self.assertEqual(result.returncode, 1, result.stderr)
        self.assertEqual(
            result.stderr.strip().splitlines(),
            [
                f"jb: error: could not start: cannot listen on 127.0.0.1:{port}: "
                "Address already in use"
            ],
        )
        self.assertNotIn("Started worker", result.stdout)

    def test_bad_workers_exit_2(self) -> None:
        for value in ("0", "-1", "many", "1.5"):
            result = run_jb("--workers", value, "--embedded")
            self.assertEqual(result.returncode, 2, (value, result.stderr))
            self.assertIn("workers must be a whole number of at least 1", result.stderr)

    def test_plugin_without_type_exits_2(self) -> None:
        """A plugin without a 'type' is a config error (exit 2), from a file too."""
        for args in (
            ("-c", write_yaml("plugins:\n  - name: x\n")),
            ("--plugin", '{"name": "x"}'),
        ):
            result = run_jb(*args, "--embedded")
            self.assertEqual(result.returncode, 2, (args, result.stderr))
            self.assertIn("'type'", result.stderr)

    def test_startup_timeout_exits_1(self) -> None:
        """With startup_timeout, backends that do not answer in time end jb
        with status 1 and one line naming the backend."""
        logs = tempfile.mkdtemp(prefix="jb-logs-")
        self.addCleanup(shutil.rmtree, logs, True)
        result = run_jb(
            *("--port", "0", "--interface", "127.0.0.1", "--logging-path", logs),
            *("--redis-port", str(free_port()), "--amqp-port", str(free_port())),
            *("--startup-timeout", "0.5"),
            env={"JUNEBUG_DISABLE_LOGGING": "1"},
        )
        self.assertEqual(result.returncode, 1, result.stderr)
        self.assertRegex(
            result.stderr,
            r"jb: error: could not start: Redis at localhost:\d+ did not answer "
            r"within 0.5s \(startup_timeout\)",
        )

    def test_help_lists_documented_options(self) -> None:
        """--help shows every documented long option."""
        result = run_jb("--help")
        self.assertEqual(result.returncode, 0)
        for option in (
            "--config",
            "--redis-host",
            "--amqp-vhost",
            "--plugin",
            "--rabbitmq-management-interface",
            "--embedded",
        ):
            self.assertIn(option, result.stdout)
