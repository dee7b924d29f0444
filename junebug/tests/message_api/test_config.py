"""``jb message-api`` configuration: options, defaults, layering, validation."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import yaml
from twisted.trial.unittest import SynchronousTestCase

from junebug.config import AmqpConfig
from junebug.errors import ConfigError
from junebug.message_api.config import (
    MessageApiConfig,
    bind_endpoint,
    build_config,
    load_config,
    messages_route,
)
from junebug.message_api.state_cache import (
    MemoryStateCache,
    MemoryStateCacheConfig,
    RedisStateCache,
    RedisStateCacheConfig,
    resolve_state_cache,
    validate_state_cache,
)

REQUIRED = {
    "connector_name": "rapidpro",
    "http_bind": "127.0.0.1:8080",
    "mo_message_url": "https://rapidpro.example/c/jn/uuid/inbound",
}

#: Every option vumi2 documents for the Junebug message API, with its default.
VUMI2_DEFAULTS: dict[str, Any] = {
    "mo_message_url_auth_token": None,
    "default_event_url": None,
    "default_event_auth_token": None,
    "base_url_path": "",
    "transport_type": "sms",
    "default_from_addr": None,
    "allow_expired_replies": False,
    "state_cache_config": {},
    "request_timeout": 240.0,
    "mo_message_url_timeout": 10.0,
    "event_url_timeout": 10.0,
}


def write_yaml(data: dict[str, Any]) -> str:
    with tempfile.NamedTemporaryFile(
        "w", suffix=".yaml", delete=False, encoding="utf-8"
    ) as handle:
        yaml.safe_dump(data, handle)
    return handle.name


class ConfigTests(SynchronousTestCase):
    def test_defaults(self) -> None:
        """The documented options exist, with vumi2's defaults."""
        config = build_config(REQUIRED)
        for name, default in VUMI2_DEFAULTS.items():
            self.assertEqual(getattr(config, name), default, name)
        self.assertEqual(config.state_cache_class, "memory")
        self.assertIsNone(config.auth)
        self.assertEqual(config.amqp, AmqpConfig())
        self.assertEqual(config.worker_concurrency, 20)
        self.assertEqual(config.http_retry_max_age, 86400.0)

    def test_required_options(self) -> None:
        for name in REQUIRED:
            layer = {k: v for k, v in REQUIRED.items() if k != name}
            with self.assertRaises(ConfigError, msg=name) as caught:
                build_config(layer)
            self.assertIn(name, str(caught.exception))

    def test_url_templates_are_checked(self) -> None:
        """mo_message_url and default_event_url may be templates; bad ones stop
        start-up with the option's name."""
        config = build_config(
            {
                **REQUIRED,
                "mo_message_url": "https://x/in?id=%I&text=%b",
                "default_event_url": "https://x/ev?id=%I&d=%d",
            }
        )
        self.assertEqual(config.default_event_url, "https://x/ev?id=%I&d=%d")
        for name, url, fragment in (
            ("mo_message_url", "https://x/in?d=%d&", "%d ({dlr_type}) has no value"),
            ("default_event_url", "https://x/{nope}", "unknown variable {nope}"),
        ):
            with self.assertRaises(ConfigError, msg=name) as caught:
                build_config({**REQUIRED, name: url})
            self.assertIn(name, str(caught.exception))
            self.assertIn(fragment, str(caught.exception))

    def test_every_option_can_be_set(self) -> None:
        values = {
            **REQUIRED,
            "mo_message_url_auth_token": "sesame",
            "default_event_url": "https://rapidpro.example/c/jn/uuid/event",
            "default_event_auth_token": "sesame",
            "base_url_path": "/channels/",
            "transport_type": "ussd",
            "default_from_addr": "2020",
            "allow_expired_replies": True,
            "state_cache_class": "redis",
            "state_cache_config": {"host": "redis.local", "timeout": 60},
            "request_timeout": 30,
            "mo_message_url_timeout": 5.5,
            "event_url_timeout": 6,
            "http_retry_max_age": 3600,
            "auth": {"username": "user1", "password": "pass1"},
            "amqp": {"hostname": "rabbit", "vhost": "/jb"},
            "amqp_url": "amqp://u:p@rabbit:5673/v",
            "worker_concurrency": 5,
            "max_body_size": 4096,
            "logfile": "/tmp/ma.log",
            "sentry_dsn": "https://key@sentry.example/1",
        }
        config = build_config(values)
        for name, value in values.items():
            if name not in ("auth", "amqp"):
                self.assertEqual(getattr(config, name), value, name)
        self.assertEqual(
            (config.auth.username, config.auth.password), ("user1", "pass1")
        )  # type: ignore[union-attr]
        self.assertEqual((config.amqp.hostname, config.amqp.vhost), ("rabbit", "/jb"))

    def test_unknown_options_are_refused(self) -> None:
        with self.assertRaises(ConfigError) as caught:
            build_config({**REQUIRED, "mo_message_ulr": "x"})
        self.assertIn("mo_message_ulr", str(caught.exception))
        with self.assertRaises(ConfigError):
            build_config({**REQUIRED, "amqp": {"hostnme": "x"}})

    def test_invalid_values(self) -> None:
        for bad in (
            {"connector_name": " "},
            {"mo_message_url": "ftp://x/"},
            {"mo_message_url": "not a url"},
            {"default_event_url": "rapidpro/event"},
            {"request_timeout": 0},
            {"event_url_timeout": -1},
            {"http_retry_max_age": 0},
            {"allow_expired_replies": "yes"},
            {"http_bind": "8080"},
            {"http_bind": "host:99999"},
            {"http_bind": "tcp:notaport"},
            {"base_url_path": "channels"},
            {"base_url_path": "/x/<other>"},
            {"state_cache_class": "nope"},
            {"state_cache_config": {"max_size": 0}},
            {"state_cache_config": {"colour": "red"}},
            {"amqp_url": "http://rabbit/"},
            {"auth": {"username": "u"}},
            {"worker_concurrency": 0},
        ):
            with self.assertRaises(ConfigError, msg=str(bad)):
                build_config({**REQUIRED, **bad})

    def test_file_env_cli_layers(self) -> None:
        """defaults < file < environment < CLI; amqp and auth merge key by key."""
        path = write_yaml(
            {
                **REQUIRED,
                "transport_type": "ussd",
                "default_from_addr": "file",
                "amqp": {"hostname": "file-host", "vhost": "/file"},
                "auth": {"username": "user1", "password": "file"},
            }
        )
        self.addCleanup(Path(path).unlink)
        environ = {
            "JUNEBUG_MESSAGE_API_DEFAULT_FROM_ADDR": "env",
            "JUNEBUG_MESSAGE_API_ALLOW_EXPIRED_REPLIES": "true",
            "JUNEBUG_MESSAGE_API_REQUEST_TIMEOUT": "12.5",
            "JUNEBUG_MESSAGE_API_STATE_CACHE_CONFIG": '{"max_size": 10}',
            "JUNEBUG_MESSAGE_API_AMQP_VHOST": "/env",
            "JUNEBUG_MESSAGE_API_AUTH_PASSWORD": "env",
        }
        config = load_config(path, environ, {"default_from_addr": "cli"})
        self.assertEqual(config.transport_type, "ussd")
        self.assertEqual(config.default_from_addr, "cli")
        self.assertTrue(config.allow_expired_replies)
        self.assertEqual(config.request_timeout, 12.5)
        self.assertEqual(config.state_cache_config, {"max_size": 10})
        self.assertEqual(
            (config.amqp.hostname, config.amqp.vhost), ("file-host", "/env")
        )
        self.assertEqual(config.auth.password if config.auth else None, "env")

    def test_config_file_from_environment(self) -> None:
        path = write_yaml(REQUIRED)
        self.addCleanup(Path(path).unlink)
        config = load_config(None, {"JUNEBUG_MESSAGE_API_CONFIG_FILE": path})
        self.assertEqual(config.connector_name, "rapidpro")

    def test_vumi2_config_file_works(self) -> None:
        """A vumi2 message API config (with its memory cache class) loads."""
        config = build_config(
            {
                **REQUIRED,
                "state_cache_class": "vumi2.applications.junebug_message_api."
                "junebug_state_cache.MemoryJunebugStateCache",
                "state_cache_config": {"timeout": 3600},
            }
        )
        self.assertIs(resolve_state_cache(config.state_cache_class), MemoryStateCache)


class HttpBindTests(SynchronousTestCase):
    def test_forms(self) -> None:
        self.assertEqual(
            bind_endpoint("localhost:8000"), "tcp:8000:interface=localhost"
        )
        self.assertEqual(bind_endpoint("0.0.0.0:80"), "tcp:80:interface=0.0.0.0")
        self.assertEqual(bind_endpoint(":8000"), "tcp:8000")
        self.assertEqual(bind_endpoint("[::1]:8000"), "tcp6:8000:interface=\\:\\:1")
        self.assertEqual(bind_endpoint("unix:/tmp/ma.sock"), "unix:/tmp/ma.sock")
        self.assertEqual(
            bind_endpoint("tcp:8080:interface=127.0.0.1"),
            "tcp:8080:interface=127.0.0.1",
        )

    def test_config_property(self) -> None:
        config = MessageApiConfig(
            connector_name="c", http_bind="127.0.0.1:0", mo_message_url="http://x/"
        )
        self.assertEqual(config.endpoint, "tcp:0:interface=127.0.0.1")
        self.assertEqual(config.route, "/messages")


class RouteTests(SynchronousTestCase):
    def test_vumi2_joining(self) -> None:
        self.assertEqual(messages_route(""), "/messages")
        self.assertEqual(messages_route("/"), "/messages")
        self.assertEqual(messages_route("/channels/"), "/channels/messages")
        self.assertEqual(messages_route("/jb/api"), "/jb/api/messages")

    def test_channel_id_segment(self) -> None:
        expected = "/channels/<string:channel_id>/messages"
        self.assertEqual(messages_route("/channels/<channel_id>"), expected)
        self.assertEqual(messages_route("/channels/{channel_id}/"), expected)
        with self.assertRaises(ConfigError):
            messages_route("/a/<channel_id>/b/<channel_id>")


class StateCacheConfigTests(SynchronousTestCase):
    def test_short_names(self) -> None:
        self.assertIs(resolve_state_cache("memory"), MemoryStateCache)
        self.assertIs(resolve_state_cache("redis"), RedisStateCache)
        self.assertIs(
            resolve_state_cache("junebug.message_api.state_cache.RedisStateCache"),
            RedisStateCache,
        )

    def test_configs(self) -> None:
        self.assertEqual(
            validate_state_cache("memory", {}), MemoryStateCacheConfig(86400, 100_000)
        )
        redis = validate_state_cache("redis", {"key_prefix": "jb", "db": 2})
        self.assertEqual(redis, RedisStateCacheConfig(key_prefix="jb", db=2))

    def test_not_a_cache(self) -> None:
        for name in ("junebug.nope.Cache", "junebug.config.JunebugConfig", "x"):
            with self.assertRaises(ConfigError, msg=name):
                resolve_state_cache(name)


class AmqpSettingsTests(SynchronousTestCase):
    def test_channel_max_reaches_the_broker_settings(self) -> None:
        """``amqp.channel_max`` is used with or without ``amqp_url`` (whose
        own ``channel_max`` option wins)."""
        from junebug.message_api.service import amqp_settings

        fields = build_config({**REQUIRED, "amqp": {"channel_max": 16}})
        self.assertEqual(amqp_settings(fields).channel_max, 16)
        url = "amqp://u:p@rabbit:5673/v"
        with_url = build_config(
            {**REQUIRED, "amqp": {"channel_max": 16}, "amqp_url": url}
        )
        self.assertEqual(amqp_settings(with_url).channel_max, 16)
        self.assertEqual(amqp_settings(with_url).host, "rabbit")
        own = build_config(
            {
                **REQUIRED,
                "amqp": {"channel_max": 16},
                "amqp_url": url + "?channel_max=4",
            }
        )
        self.assertEqual(amqp_settings(own).channel_max, 4)
