"""Loads plugins and fans channel lifecycle events out to them.

A failing plugin hook is logged and never stops a channel operation.  A
failing ``start_plugin`` stops Junebug's start (the plugins started before it
are stopped again).
"""

from __future__ import annotations

import inspect
from typing import Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from junebug.errors import ConfigError
from junebug.plugins.interface import JunebugPlugin
from junebug.reactors import JunebugReactor
from junebug.transports.registry import load_dotted


async def _call(result: Any) -> Any:
    if isinstance(result, Deferred) or inspect.isawaitable(result):
        return await result
    return result


class PluginHost:
    """Holds the configured plugins."""

    log = Logger()

    def __init__(
        self,
        plugin_configs: list[dict[str, Any]],
        reactor: JunebugReactor | None = None,
    ) -> None:
        self._configs = plugin_configs
        self.plugins: list[tuple[Any, dict[str, Any]]] = []
        self._started: list[Any] = []
        for config in plugin_configs:
            path = config.get("type")
            if not isinstance(path, str):
                raise ConfigError("plugins: each plugin needs a 'type' class path")
            plugin = load_dotted(path)()
            if reactor is not None and isinstance(plugin, JunebugPlugin):
                plugin.reactor = reactor
            self.plugins.append((plugin, config))

    async def start(self, junebug_config: Any) -> None:
        """Start each plugin in turn; if one fails, stop those started, raise."""
        for plugin, config in self.plugins:
            try:
                await _call(plugin.start_plugin(config, junebug_config))
            except BaseException:
                await self.stop()
                raise
            self._started.append(plugin)

    def problems(self) -> list[dict[str, str]]:
        """Every started plugin's ``health_problems()``, for ``/health``."""
        found: list[dict[str, str]] = []
        for plugin in self._started:
            method = getattr(plugin, "health_problems", None)
            if method is None:
                continue
            try:
                found.extend(method())
            except Exception:
                self.log.failure("Plugin {plugin!r} failed in health", plugin=plugin)
        return found

    async def stop(self) -> None:
        """Stop the started plugins, last started first."""
        started, self._started = self._started, []
        for plugin in reversed(started):
            try:
                await _call(plugin.stop_plugin())
            except Exception:
                self.log.failure("Plugin {plugin!r} failed to stop", plugin=plugin)

    async def channel_started(self, channel: Any) -> None:
        await self._fan_out("channel_started", channel)

    async def channel_stopped(self, channel: Any) -> None:
        await self._fan_out("channel_stopped", channel)

    async def _fan_out(self, hook: str, channel: Any) -> None:
        for plugin, _config in self.plugins:
            method = getattr(plugin, hook, None)
            if method is None:
                continue
            try:
                await _call(method(channel))
            except Exception:
                self.log.failure(
                    "Plugin {plugin!r} failed in {hook}", plugin=plugin, hook=hook
                )
