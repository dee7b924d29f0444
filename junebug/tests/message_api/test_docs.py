"""``docs/message-api.rst`` documents every option, flag and state cache setting."""

from __future__ import annotations

from pathlib import Path

import attrs
from twisted.trial.unittest import SynchronousTestCase

from junebug.config import AmqpConfig
from junebug.message_api.cli import build_parser
from junebug.message_api.config import BasicAuthConfig, MessageApiConfig, env_var
from junebug.message_api.state_cache import (
    MemoryStateCacheConfig,
    RedisStateCacheConfig,
)

PAGE = Path(__file__).resolve().parents[3] / "docs" / "message-api.rst"
UNUSED_AMQP = {"db", "prefetch"}


class MessageApiDocsTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.text = PAGE.read_text(encoding="utf-8")

    def test_every_option_is_documented(self) -> None:
        for field in attrs.fields(MessageApiConfig):
            if field.name in ("amqp", "auth"):
                continue
            self.assertIn(f"``{field.name}``", self.text, field.name)
        for section, cls in (("amqp", AmqpConfig), ("auth", BasicAuthConfig)):
            for field in attrs.fields(cls):
                self.assertIn(f"``{section}.{field.name}``", self.text)

    def test_every_state_cache_option_is_documented(self) -> None:
        for cls in (MemoryStateCacheConfig, RedisStateCacheConfig):
            for field in attrs.fields(cls):
                self.assertIn(f"``{field.name}``", self.text, field.name)

    def test_flags_and_variables_follow_the_documented_rule(self) -> None:
        """``--<option-name>`` / ``--<section>-<field>``, plus two documented aliases."""
        for action in build_parser()._actions:
            if action.dest in ("help", "config_filename"):
                continue
            rule = "--" + action.dest.replace(".", "-").replace("_", "-")
            self.assertIn(rule, action.option_strings)
            for extra in set(action.option_strings) - {rule}:
                self.assertIn(f"``{extra}``", self.text)
        self.assertEqual(env_var("amqp.hostname"), "JUNEBUG_MESSAGE_API_AMQP_HOSTNAME")
        self.assertIn("``JUNEBUG_MESSAGE_API_CONFIG_FILE``", self.text)

    def test_no_http_directive(self) -> None:
        """The messages endpoint is not the main API's: an ``http:post``
        directive would put it in the main API's route parity check."""
        self.assertNotIn(".. http:", self.text)
