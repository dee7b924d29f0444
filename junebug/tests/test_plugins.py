"""Plugins (the documented JunebugPlugin interface) and channel types added by
config: loaded from the config and the CLI, told about channel lifecycles."""

from __future__ import annotations

from typing import Any, ClassVar

from twisted.internet import reactor
from twisted.internet.defer import Deferred, succeed
from twisted.trial.unittest import SynchronousTestCase, TestCase

from junebug.channels.service import Channel
from junebug.cli import build_parser, cli_layer
from junebug.config import build_config
from junebug.errors import ConfigError
from junebug.plugin import JunebugPlugin as OriginalPathPlugin
from junebug.plugins.host import PluginHost
from junebug.plugins.interface import JunebugPlugin
from junebug.testing.api import ApiDriver
from junebug.testing.stub_api import StubApi
from junebug.testing.transports import FakeTransport
from junebug.transports.registry import DEFAULT_TRANSPORTS, TransportRegistry

FAKE = {"type": "fake", "config": {}, "mo_url": "http://127.0.0.1:1/mo"}
HERE = "junebug.tests.test_plugins"


class RecordingPlugin(JunebugPlugin):
    """Records every hook call in ``calls`` (shared by all instances)."""

    calls: ClassVar[list[tuple[Any, ...]]] = []

    async def start_plugin(self, config: dict[str, Any], junebug_config: Any) -> None:
        self.calls.append(("start", config, junebug_config))

    async def stop_plugin(self) -> None:
        self.calls.append(("stop",))

    async def channel_started(self, channel: Any) -> None:
        self.calls.append(("started", channel))

    async def channel_stopped(self, channel: Any) -> None:
        self.calls.append(("stopped", channel))


class DeferredPlugin:
    """A plugin in the original's style: not a subclass, hooks return Deferreds."""

    calls: ClassVar[list[str]] = []

    def start_plugin(
        self, config: dict[str, Any], junebug_config: Any
    ) -> Deferred[None]:
        d: Deferred[None] = Deferred()
        reactor.callLater(0, d.callback, None)  # type: ignore[attr-defined]
        d.addCallback(lambda _: self.calls.append("start"))
        return d

    def channel_started(self, channel: Any) -> Deferred[None]:
        self.calls.append(f"started {channel.id}")
        return succeed(None)

    def channel_stopped(self, channel: Any) -> None:
        self.calls.append(f"stopped {channel.id}")

    def stop_plugin(self) -> None:
        self.calls.append("stop")


class FailingPlugin(JunebugPlugin):
    async def channel_started(self, channel: Any) -> None:
        raise RuntimeError("plugin broke")

    async def channel_stopped(self, channel: Any) -> None:
        raise RuntimeError("plugin broke again")

    async def stop_plugin(self) -> None:
        raise RuntimeError("plugin broke at stop")


class PluginHostTests(TestCase):
    def test_bad_configs(self) -> None:
        with self.assertRaisesRegex(ConfigError, "type"):
            PluginHost([{"server_name": "x"}])
        with self.assertRaisesRegex(ConfigError, "cannot import"):
            PluginHost([{"type": "no.such.module.Plugin"}])
        with self.assertRaisesRegex(ConfigError, "has no attribute"):
            PluginHost([{"type": f"{HERE}.NoSuchPlugin"}])

    def test_original_import_path(self) -> None:
        self.assertIs(OriginalPathPlugin, JunebugPlugin)

    async def test_base_class_hooks_do_nothing(self) -> None:
        host = PluginHost([{"type": "junebug.plugins.interface.JunebugPlugin"}])
        await host.start({})
        await host.channel_started(object())
        await host.channel_stopped(object())
        await host.stop()

    async def test_deferred_style_plugin(self) -> None:
        DeferredPlugin.calls.clear()
        host = PluginHost([{"type": f"{HERE}.DeferredPlugin"}])
        await host.start({})
        channel = type("C", (), {"id": "c1"})()
        await host.channel_started(channel)
        await host.channel_stopped(channel)
        await host.stop()
        self.assertEqual(
            DeferredPlugin.calls, ["start", "started c1", "stopped c1", "stop"]
        )


class PluginLifecycleTests(TestCase):
    """Driven through StubTreq on a fake clock."""

    def setUp(self) -> None:
        RecordingPlugin.calls.clear()

    async def start(self, **overrides: Any) -> StubApi:
        api = StubApi()
        self.addCleanup(api.stop)
        await api.start(**overrides)
        return api

    def hooks(self) -> list[tuple[str, str | None]]:
        """(hook, channel id) of each call after start."""
        return [
            (call[0], call[1].id if call[0] in ("started", "stopped") else None)
            for call in RecordingPlugin.calls
            if call[0] != "start"
        ]

    async def test_hooks_follow_channel_lifecycle(self) -> None:
        """start_plugin gets the plugin's config and Junebug's; channel_started
        on create and restart, channel_stopped on restart and delete, not on a
        modify that needs no restart; stop_plugin last."""
        api = await self.start(
            plugins=[{"type": f"{HERE}.RecordingPlugin", "option": 42}]
        )
        [(name, config, junebug_config)] = RecordingPlugin.calls
        self.assertEqual(name, "start")
        self.assertEqual(config, {"type": f"{HERE}.RecordingPlugin", "option": 42})
        self.assertTrue(junebug_config["embedded"])
        self.assertIn("channels", junebug_config)

        code, body, _ = await api.request("POST", "/channels/", FAKE)
        self.assertEqual(code, 201)
        cid = body["result"]["id"]
        started = RecordingPlugin.calls[-1][1]
        self.assertIsInstance(started, Channel)
        self.assertEqual(started.id, cid)
        self.assertEqual(started.properties["type"], "fake")
        self.assertTrue(started.running)

        await api.request("POST", f"/channels/{cid}", {"label": "renamed"})
        await api.request("POST", f"/channels/{cid}/restart")
        await api.request("POST", f"/channels/{cid}", {"config": {"number": 2}})
        await api.request("DELETE", f"/channels/{cid}")
        await api.stop()
        self.assertEqual(
            self.hooks(),
            [
                ("started", cid),
                ("stopped", cid),
                ("started", cid),
                ("stopped", cid),
                ("started", cid),
                ("stopped", cid),
                ("stop", None),
            ],
        )

    async def test_started_at_startup_and_stopped_at_shutdown(self) -> None:
        api = await self.start(
            plugins=[{"type": f"{HERE}.RecordingPlugin"}],
            startup_channels=[{"id": "stored-1", **FAKE}],
        )
        self.assertEqual(self.hooks(), [("started", "stored-1")])
        await api.stop()
        self.assertEqual(
            self.hooks(),
            [("started", "stored-1"), ("stopped", "stored-1"), ("stop", None)],
        )

    async def test_failing_plugin_never_stops_a_channel(self) -> None:
        api = await self.start(
            plugins=[
                {"type": f"{HERE}.FailingPlugin"},
                {"type": f"{HERE}.RecordingPlugin"},
            ]
        )
        code, body, _ = await api.request("POST", "/channels/", FAKE)
        self.assertEqual(code, 201)
        cid = body["result"]["id"]
        code, _, _ = await api.request("DELETE", f"/channels/{cid}")
        self.assertEqual(code, 200)
        await api.stop()
        # The plugin after the failing one is still told everything.
        self.assertEqual(
            self.hooks(), [("started", cid), ("stopped", cid), ("stop", None)]
        )
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 3)

    async def test_plugin_from_cli(self) -> None:
        namespace = build_parser().parse_args(
            ["--plugin", f'{{"type": "{HERE}.RecordingPlugin", "a": 1}}']
        )
        _, layer = cli_layer(namespace)
        await self.start(plugins=layer["plugins"])
        self.assertEqual(
            RecordingPlugin.calls[0][1], {"type": f"{HERE}.RecordingPlugin", "a": 1}
        )


class ChannelTypesTests(TestCase):
    def test_defaults(self) -> None:
        self.assertEqual(
            {"telnet", "telnet_addr", "dmark", "http"}
            - set(TransportRegistry().types()),
            set(),
        )
        self.assertEqual(
            DEFAULT_TRANSPORTS["dmark"],
            "junebug.transports.dmark.transport.DmarkTransport",
        )

    def test_added_and_replaced(self) -> None:
        path = "junebug.testing.transports.FakeTransport"
        added = TransportRegistry({"mine": path})
        self.assertIs(added.resolve("mine"), FakeTransport)
        self.assertIn("dmark", added.types())
        replaced = TransportRegistry({"mine": path}, replace=True)
        self.assertEqual(replaced.types(), ["mine"])

    def test_cli_and_config(self) -> None:
        namespace = build_parser().parse_args(
            [
                "--channels",
                "mine:junebug.testing.transports.FakeTransport",
                "-ch",
                "rec:junebug.testing.transports.RecordingTransport",
                "--replace-channels",
            ]
        )
        _, layer = cli_layer(namespace)
        config = build_config(layer)
        self.assertEqual(
            config.channels,
            {
                "mine": "junebug.testing.transports.FakeTransport",
                "rec": "junebug.testing.transports.RecordingTransport",
            },
        )
        self.assertTrue(config.replace_channels)
        with self.assertRaises(SystemExit):
            build_parser().parse_args(["--channels", "no-colon"])

    async def test_api_with_replaced_types(self) -> None:
        api = ApiDriver(reactor)
        self.addCleanup(api.stop)
        await api.start(
            channels={"mine": "junebug.testing.transports.FakeTransport"},
            replace_channels=True,
        )
        code, body, _ = await api.request(
            "POST", "/channels/", {**FAKE, "type": "mine"}
        )
        self.assertEqual(code, 201, body)
        code, body, _ = await api.request(
            "POST", "/channels/", {**FAKE, "type": "telnet"}
        )
        self.assertEqual(code, 400)
        self.assertEqual(body["description"], "invalid channel type")
        self.assertIn("must be one of: mine", body["result"]["errors"][0]["message"])

    async def test_bad_class_path_is_refused_on_create(self) -> None:
        """A type whose class cannot be imported is a 400 naming the problem
        (``jb`` itself refuses such a config at start-up), never a channel."""
        api = ApiDriver(reactor)
        self.addCleanup(api.stop)
        await api.start(channels={"broken": "junebug.no_such_module.Transport"})
        code, body, _ = await api.request(
            "POST", "/channels/", {**FAKE, "type": "broken"}
        )
        self.assertEqual(code, 400, body)
        self.assertEqual(body["description"], "invalid channel type")
        self.assertIn("cannot be loaded", body["result"]["errors"][0]["message"])
        code, body, _ = await api.request("GET", "/channels/")
        self.assertEqual(body["result"], [])


class OriginalPluginSubclassTests(SynchronousTestCase):
    def test_nginx_plugin_is_a_junebug_plugin(self) -> None:
        from junebug.plugins.nginx import NginxPlugin

        self.assertTrue(issubclass(NginxPlugin, OriginalPathPlugin))
