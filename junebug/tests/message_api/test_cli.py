"""``jb message-api``: the subcommand, its flags and their precedence."""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Sequence
from pathlib import Path

import attrs
from twisted.trial.unittest import SynchronousTestCase

import junebug.cli
import junebug.message_api.cli
from junebug.message_api.cli import build_parser, parse_config
from junebug.message_api.config import MessageApiConfig
from junebug.tests.message_api.test_config import REQUIRED, write_yaml

REQUIRED_FLAGS = [
    "--connector-name",
    "rapidpro",
    "--http-bind",
    "127.0.0.1:8080",
    "--mo-message-url",
    "https://rapidpro.example/c/jn/uuid/inbound",
]


class CliTests(SynchronousTestCase):
    def setUp(self) -> None:
        # The environment of the test run must not leak into these configs.
        saved = {
            name: value
            for name, value in os.environ.items()
            if name.startswith("JUNEBUG_MESSAGE_API_")
        }
        for name in saved:
            del os.environ[name]
        self.addCleanup(os.environ.update, saved)

    def test_dispatch(self) -> None:
        """``jb message-api ...`` runs the subcommand with the remaining args;
        other invocations are ``jb`` as before."""
        calls: list[Sequence[str]] = []
        self.patch(junebug.message_api.cli, "main", calls.append)
        junebug.cli.main(["message-api", "--connector-name", "x"])
        self.assertEqual(calls, [["--connector-name", "x"]])
        namespace = junebug.cli.build_parser().parse_args(["-p", "8000"])
        self.assertEqual(namespace.port, 8000)

    def test_help_lists_every_option(self) -> None:
        out = io.StringIO()
        with contextlib.redirect_stdout(out), self.assertRaises(SystemExit) as caught:
            junebug.cli.main(["message-api", "--help"])
        self.assertEqual(caught.exception.code, 0)
        text = out.getvalue()
        self.assertIn("usage: jb message-api", text)
        for field in attrs.fields(MessageApiConfig):
            if field.name not in ("amqp", "auth"):
                self.assertIn("--" + field.name.replace("_", "-"), text)
        for flag in (
            "--amqp-host",
            "--amqp-vhost",
            "--auth-username",
            "--auth-password",
        ):
            self.assertIn(flag, text)

    def test_flags(self) -> None:
        config = parse_config(
            [
                *REQUIRED_FLAGS,
                "--mo-message-url-auth-token",
                "sesame",
                "--default-event-url",
                "https://rapidpro.example/c/jn/uuid/event",
                "--default-event-auth-token",
                "sesame",
                "--base-url-path",
                "/channels/",
                "--transport-type",
                "ussd",
                "--default-from-addr",
                "2020",
                "--allow-expired-replies",
                "--state-cache-class",
                "redis",
                "--state-cache-config",
                '{"key_prefix": "jb", "timeout": 30}',
                "--request-timeout",
                "20",
                "--mo-message-url-timeout",
                "3",
                "--event-url-timeout",
                "4.5",
                "--amqp-host",
                "rabbit",
                "--amqp-vhost",
                "/jb",
                "--amqp-user",
                "jbuser",
                "--auth-username",
                "user1",
                "--auth-password",
                "pass1",
                "--worker-concurrency",
                "3",
            ]
        )
        self.assertEqual(config.mo_message_url_auth_token, "sesame")
        self.assertEqual(config.default_event_auth_token, "sesame")
        self.assertEqual(config.base_url_path, "/channels/")
        self.assertEqual(config.transport_type, "ussd")
        self.assertEqual(config.default_from_addr, "2020")
        self.assertTrue(config.allow_expired_replies)
        self.assertEqual(config.state_cache_class, "redis")
        self.assertEqual(config.state_cache_config, {"key_prefix": "jb", "timeout": 30})
        self.assertEqual(
            (
                config.request_timeout,
                config.mo_message_url_timeout,
                config.event_url_timeout,
            ),
            (20.0, 3.0, 4.5),
        )
        self.assertEqual(
            (config.amqp.hostname, config.amqp.vhost, config.amqp.username),
            ("rabbit", "/jb", "jbuser"),
        )
        assert config.auth is not None
        self.assertEqual(
            (config.auth.username, config.auth.password), ("user1", "pass1")
        )
        self.assertEqual(config.worker_concurrency, 3)

    def test_boolean_flag_values(self) -> None:
        self.assertFalse(
            parse_config(
                [*REQUIRED_FLAGS, "--allow-expired-replies", "false"]
            ).allow_expired_replies
        )

    def test_config_file_and_flags(self) -> None:
        """``--config`` is read; a flag given overrides it, one not given does not."""
        path = write_yaml(
            {**REQUIRED, "transport_type": "ussd", "default_from_addr": "f"}
        )
        self.addCleanup(Path(path).unlink)
        config = parse_config(["--config", path, "--default-from-addr", "cli"])
        self.assertEqual(
            (config.transport_type, config.default_from_addr), ("ussd", "cli")
        )
        config = parse_config(["-c", path])
        self.assertEqual(config.default_from_addr, "f")

    def test_bad_config_exits_2(self) -> None:
        err = io.StringIO()
        with contextlib.redirect_stderr(err), self.assertRaises(SystemExit) as caught:
            parse_config(["--connector-name", "x"])
        self.assertEqual(caught.exception.code, 2)
        with contextlib.redirect_stderr(err), self.assertRaises(SystemExit) as caught:
            parse_config([*REQUIRED_FLAGS, "--request-timeout", "soon"])
        self.assertEqual(caught.exception.code, 2)

    def test_parser_has_no_required_flags(self) -> None:
        """Everything may come from the file or the environment instead."""
        self.assertEqual(vars(build_parser().parse_args([])), {})
