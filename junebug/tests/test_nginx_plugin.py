"""The bundled nginx plugin, with a recording command in place of nginx.

(The real nginx is driven by junebug/tests/integration/test_nginx_dmark.py.)
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from twisted.internet import reactor
from twisted.internet.task import Clock
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase, TestCase

from junebug.converter import structure
from junebug.errors import ConfigError
from junebug.plugins.nginx import NginxPlugin, NginxPluginConfig
from junebug.plugins.nginx.plugin import (
    DEFAULT_LOCATION_TEMPLATE,
    DEFAULT_VHOST_TEMPLATE,
    public_http_properties,
)
from junebug.testing.api import ApiDriver
from junebug.tests.support.process import free_port

RECORD = "import sys; open(sys.argv[1], 'a').write(' '.join(sys.argv[2:]) + '\\n')"


def channel(
    cid: str = "chan-1", port: int | None = None, **properties: Any
) -> SimpleNamespace:
    return SimpleNamespace(
        id=cid, properties=properties, transport=SimpleNamespace(port=port)
    )


class PublicHttpTests(SynchronousTestCase):
    def test_from_config(self) -> None:
        self.assertEqual(
            public_http_properties({"config": {"web_path": "/a", "web_port": 8080}}),
            {"enabled": True, "web_path": "/a", "web_port": 8080},
        )

    def test_overrides(self) -> None:
        """Top-level public_http wins over config-level, which wins over config."""
        props = {
            "config": {
                "web_path": "/a",
                "web_port": 8080,
                "public_http": {"web_path": "/b", "enabled": False},
            },
            "public_http": {"web_port": 9090, "enabled": True},
        }
        self.assertEqual(
            public_http_properties(props),
            {"enabled": True, "web_path": "/b", "web_port": 9090},
        )

    def test_missing_or_unbound(self) -> None:
        self.assertIsNone(public_http_properties({"config": {"web_path": "/a"}}))
        self.assertIsNone(public_http_properties({"config": {"web_port": 1}}))
        self.assertIsNone(public_http_properties({"type": "telnet", "config": None}))
        self.assertIsNone(
            public_http_properties({"config": {"web_path": "/a", "web_port": 0}})
        )
        self.assertEqual(
            public_http_properties(
                {"config": {"web_path": "/a", "web_port": 0}}, bound_port=4321
            ),
            {"enabled": True, "web_path": "/a", "web_port": 4321},
        )

    def test_config(self) -> None:
        config = structure({"server_name": "jb.example.org"}, NginxPluginConfig)
        self.assertEqual(config.vhost_file, "/etc/nginx/sites-enabled/junebug.conf")
        self.assertEqual(config.locations_dir, "/etc/nginx/includes/junebug/")
        self.assertEqual(config.vhost_template, DEFAULT_VHOST_TEMPLATE)
        self.assertEqual(config.location_template, DEFAULT_LOCATION_TEMPLATE)
        self.assertEqual(config.command, ["nginx", "-s", "reload"])
        self.assertEqual(config.listen, "80")
        for bad, field in [
            ({}, "server_name"),
            ({"server_name": " "}, "server_name"),
            ({"server_name": "x", "reload_command": []}, "reload_command"),
            ({"server_name": "x", "reload_command": [1]}, "reload_command"),
            ({"server_name": "x", "listen": True}, "listen"),
            ({"server_name": "x", "upstream_host": "a; b"}, "upstream_host"),
        ]:
            with self.assertRaisesRegex(ConfigError, field):
                structure(bad, NginxPluginConfig)


class NginxPluginTests(TestCase):
    def setUp(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="jb-nginx-plugin-"))
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.calls = self.dir / "calls.txt"
        self.vhost = self.dir / "sites-enabled" / "junebug.conf"
        self.locations = self.dir / "includes" / "junebug"

    def plugin_config(self, **extra: Any) -> dict[str, Any]:
        return {
            "type": "junebug.plugins.nginx.NginxPlugin",
            "server_name": "jb.example.org",
            "vhost_file": str(self.vhost),
            "locations_dir": f"{self.locations}/",
            "reload_command": [sys.executable, "-c", RECORD, str(self.calls), "reload"],
            **extra,
        }

    async def start(self, **extra: Any) -> NginxPlugin:
        plugin = NginxPlugin(reactor)
        await plugin.start_plugin(self.plugin_config(**extra), {})
        return plugin

    def reloads(self) -> int:
        return len(self.calls.read_text().splitlines()) if self.calls.exists() else 0

    async def test_start_writes_vhost_and_reloads(self) -> None:
        await self.start()
        self.assertEqual(
            self.vhost.read_text(),
            "server {\n"
            "  listen 80;\n"
            "  server_name jb.example.org;\n"
            f"  include {self.locations}/*.conf;\n"
            "}\n",
        )
        self.assertTrue(self.locations.is_dir())
        self.assertEqual(self.calls.read_text(), "reload\n")

    async def test_listen(self) -> None:
        await self.start(listen=8080)
        self.assertIn("listen 8080;", self.vhost.read_text())

    async def test_channel_location(self) -> None:
        plugin = await self.start()
        await plugin.channel_started(
            channel(config={"web_path": "/foo/bar", "web_port": 2323})
        )
        location = self.locations / "chan-1.conf"
        text = location.read_text()
        self.assertTrue(text.startswith("location /foo/bar {\n"))
        self.assertIn("  proxy_pass http://localhost:2323/foo/bar;\n", text)
        self.assertEqual(self.reloads(), 2)
        self.assertEqual(plugin.locations, {"chan-1": location})

        await plugin.channel_stopped(channel())
        self.assertFalse(location.exists())
        self.assertEqual(self.reloads(), 3)
        await plugin.channel_stopped(channel())
        self.assertEqual(self.reloads(), 3)

    async def test_path_without_slash_and_overrides(self) -> None:
        plugin = await self.start(upstream_host="127.0.0.1")
        await plugin.channel_started(
            channel(
                config={"web_path": "internal", "web_port": 2323},
                public_http={"web_path": "//public/path", "web_port": 9999},
            )
        )
        text = (self.locations / "chan-1.conf").read_text()
        self.assertIn("location /public/path {", text)
        self.assertIn("proxy_pass http://127.0.0.1:9999/public/path;", text)

    async def test_bound_port(self) -> None:
        """web_port 0: the port the transport actually bound is used."""
        plugin = await self.start()
        await plugin.channel_started(
            channel(port=4567, config={"web_path": "/x", "web_port": 0})
        )
        self.assertIn(
            "http://localhost:4567/x", (self.locations / "chan-1.conf").read_text()
        )

    async def test_ignored_channels(self) -> None:
        plugin = await self.start()
        for ch in [
            channel(type="telnet", config={"twisted_endpoint": "tcp:0"}),
            channel(config={"web_path": "/x"}),
            channel(
                config={"web_path": "/x", "web_port": 80},
                public_http={"enabled": False},
            ),
        ]:
            await plugin.channel_started(ch)
        self.assertEqual(list(self.locations.iterdir()), [])
        self.assertEqual(self.reloads(), 1)

    async def test_unsafe_values_refused(self) -> None:
        """Nothing from a channel can inject nginx directives or escape the
        locations directory."""
        errors: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(errors.append)
        self.addCleanup(globalLogPublisher.removeObserver, errors.append)
        plugin = await self.start()
        for ch in [
            channel(config={"web_path": "/x { return 200; } #", "web_port": 80}),
            channel(config={"web_path": "/x;", "web_port": 80}),
            channel(config={"web_path": "/x", "web_port": "80; evil"}),
            channel(config={"web_path": "/x", "web_port": 70000}),
            channel(cid="../escape", config={"web_path": "/x", "web_port": 80}),
        ]:
            await plugin.channel_started(ch)
        self.assertEqual(list(self.locations.iterdir()), [])
        self.assertFalse((self.dir / "includes" / "escape.conf").exists())
        self.assertEqual(
            len([e for e in errors if "unusable" in e.get("log_format", "")]), 5
        )

    async def test_stop_removes_everything(self) -> None:
        plugin = await self.start()
        await plugin.channel_started(
            channel("a", config={"web_path": "/a", "web_port": 1})
        )
        await plugin.channel_started(
            channel("b", config={"web_path": "/b", "web_port": 2})
        )
        await plugin.stop_plugin()
        self.assertFalse(self.vhost.exists())
        self.assertEqual(list(self.locations.iterdir()), [])
        self.assertEqual(self.reloads(), 4)

    async def test_custom_templates(self) -> None:
        vhost_t = self.dir / "v.tmpl"
        vhost_t.write_text("# %(server_name)s %(includes)s\n")
        loc_t = self.dir / "l.tmpl"
        loc_t.write_text("# %(external_path)s -> %(internal_url)s\n")
        plugin = await self.start(
            vhost_template=str(vhost_t), location_template=str(loc_t)
        )
        self.assertEqual(
            self.vhost.read_text(), f"# jb.example.org {self.locations}/*.conf\n"
        )
        await plugin.channel_started(channel(config={"web_path": "/a", "web_port": 5}))
        self.assertEqual(
            (self.locations / "chan-1.conf").read_text(),
            "# /a -> http://localhost:5/a\n",
        )

    async def test_missing_template(self) -> None:
        with self.assertRaisesRegex(ConfigError, "vhost_template"):
            await self.start(vhost_template=str(self.dir / "nope"))

    async def test_nginx_not_found(self) -> None:
        """As the original: a missing nginx is logged, not raised."""
        errors: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(errors.append)
        self.addCleanup(globalLogPublisher.removeObserver, errors.append)
        await self.start(reload_command="no-such-nginx-binary -s reload")
        self.assertTrue(self.vhost.exists())
        self.assertIn(
            "Cannot reload nginx, nginx not found in path",
            [e.get("log_format") for e in errors],
        )

    def failing_until(self, marker: Path) -> list[str]:
        """A reload command failing (exit 1, as ``nginx -s reload`` does with
        no nginx running) until ``marker`` exists, recording each call."""
        script = (
            "import sys, pathlib; "
            "open(sys.argv[1], 'a').write('reload\\n'); "
            "pathlib.Path(sys.argv[2]).exists() or "
            "sys.exit('nginx: [error] invalid PID number \"\" in nginx.pid')"
        )
        return [sys.executable, "-c", script, str(self.calls), str(marker)]

    async def test_reload_failure_is_logged_shown_and_retried(self) -> None:
        """A failing reload does not fail the start: it is logged, shown as a
        health problem and retried after 1 s, 2 s, 4 s... until it works."""
        errors: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(errors.append)
        self.addCleanup(globalLogPublisher.removeObserver, errors.append)
        clock = Clock()
        marker = self.dir / "nginx-running"
        plugin = NginxPlugin(reactor, clock=clock)
        await plugin.start_plugin(
            self.plugin_config(reload_command=self.failing_until(marker)), {}
        )
        self.assertTrue(self.vhost.exists())
        self.assertEqual(self.reloads(), 1)
        [problem] = plugin.health_problems()
        self.assertEqual(problem["type"], "NginxReloadError")
        self.assertIn("exited with 1: nginx: [error] invalid PID", problem["message"])
        self.assertTrue(any(e.get("delay") == 1.0 for e in errors))
        clock.advance(0.9)
        self.assertEqual(self.reloads(), 1)
        clock.advance(0.1)
        await plugin.retrying()
        self.assertEqual(self.reloads(), 2)
        self.assertTrue(plugin.health_problems())
        clock.advance(1.9)
        self.assertEqual(self.reloads(), 2)
        marker.touch()
        clock.advance(0.1)
        await plugin.retrying()
        self.assertEqual(self.reloads(), 3)
        self.assertEqual(plugin.health_problems(), [])
        self.assertEqual(clock.getDelayedCalls(), [])

    async def test_stop_cancels_the_retry(self) -> None:
        """Stopping the plugin leaves no retry behind; its own failed reload
        is only logged."""
        clock = Clock()
        plugin = NginxPlugin(reactor, clock=clock)
        await plugin.start_plugin(
            self.plugin_config(reload_command=self.failing_until(self.dir / "never")),
            {},
        )
        self.assertEqual(len(clock.getDelayedCalls()), 1)
        await plugin.stop_plugin()
        self.assertEqual(clock.getDelayedCalls(), [])
        self.assertFalse(self.vhost.exists())
        self.assertEqual(self.reloads(), 2)


class NginxPluginApiTests(TestCase):
    """The plugin loaded from config, driven by the channels API."""

    async def test_failing_reload_does_not_stop_jb(self) -> None:
        """jb starts although nginx cannot be reloaded (not running yet);
        /health shows the plugin's problem until a reload works."""
        tmp = Path(tempfile.mkdtemp(prefix="jb-nginx-api-"))
        self.addCleanup(shutil.rmtree, tmp, True)
        marker = tmp / "nginx-running"
        script = (
            "import sys, pathlib; pathlib.Path(sys.argv[1]).exists() or "
            "sys.exit('nginx: [error] open() nginx.pid failed')"
        )
        api = ApiDriver(reactor)
        self.addCleanup(api.stop)
        junebug = await api.start(
            plugins=[
                {
                    "type": "junebug.plugins.nginx.NginxPlugin",
                    "server_name": "jb",
                    "vhost_file": str(tmp / "junebug.conf"),
                    "locations_dir": str(tmp / "locations"),
                    "reload_command": [sys.executable, "-c", script, str(marker)],
                }
            ]
        )
        code, body, _ = await api.request("GET", "/health")
        self.assertEqual((code, body["description"]), (503, "unhealthy"))
        [error] = body["result"]["errors"]
        self.assertEqual(error["type"], "NginxReloadError")
        self.assertIn("nginx.pid failed", error["message"])
        code, _, _ = await api.request("GET", "/channels/")
        self.assertEqual(code, 200)
        [(plugin, _config)] = junebug.plugins.plugins
        self.assertIs(plugin.reactor, reactor)
        marker.touch()
        self.assertTrue(await plugin.reload())
        code, body, _ = await api.request("GET", "/health")
        self.assertEqual((code, body["description"]), (200, "health ok"))

    async def test_lifecycle(self) -> None:
        tmp = Path(tempfile.mkdtemp(prefix="jb-nginx-api-"))
        self.addCleanup(shutil.rmtree, tmp, True)
        calls = tmp / "calls.txt"
        locations = tmp / "locations"
        api = ApiDriver(reactor)
        self.addCleanup(api.stop)
        await api.start(
            plugins=[
                {
                    "type": "junebug.plugins.nginx.NginxPlugin",
                    "server_name": "jb",
                    "vhost_file": str(tmp / "junebug.conf"),
                    "locations_dir": str(locations),
                    "reload_command": [sys.executable, "-c", RECORD, str(calls), "r"],
                }
            ]
        )
        port = free_port()
        code, body, _ = await api.request(
            "POST",
            "/channels/",
            {
                "type": "dmark",
                "mo_url": "http://127.0.0.1:1/mo",
                "config": {
                    "web_path": "/ussd",
                    "web_port": port,
                    "web_interface": "127.0.0.1",
                },
            },
        )
        self.assertEqual(code, 201, body)
        cid = body["result"]["id"]
        location = locations / f"{cid}.conf"
        self.assertIn(f"http://localhost:{port}/ussd", location.read_text())

        code, _, _ = await api.request("POST", f"/channels/{cid}/restart")
        self.assertEqual(code, 200)
        self.assertTrue(location.exists())

        code, body, _ = await api.request(
            "POST", f"/channels/{cid}", {"public_http": {"enabled": False}}
        )
        self.assertEqual(code, 200, body)
        # Not a runtime change: the channel is not restarted, the plugin not told.
        self.assertTrue(location.exists())
        code, _, _ = await api.request("POST", f"/channels/{cid}/restart")
        self.assertFalse(location.exists())

        code, _, _ = await api.request("DELETE", f"/channels/{cid}")
        self.assertEqual(code, 200)
        self.assertFalse(location.exists())
        # start, create, restart (stop + start), restart (stop; start ignored)
        self.assertEqual(len(calls.read_text().splitlines()), 5)
        await api.stop()
        self.assertFalse((tmp / "junebug.conf").exists())
