"""The plugin interface, as the original documented it.

A plugin is a class named in the ``plugins`` config (``type``: dotted path).  Its
hooks may be plain methods or return Deferreds/awaitables; all are awaited.
"""

from __future__ import annotations

from typing import Any


class JunebugPlugin:
    """Base class for Junebug plugins; override the hooks you need.

    ``reactor`` is set by Junebug to its reactor before :meth:`start_plugin`
    (for timers and child processes).
    """

    reactor: Any = None

    async def start_plugin(self, config: dict[str, Any], junebug_config: Any) -> None:
        """Called once at start-up with this plugin's config dict."""

    async def stop_plugin(self) -> None:
        """Called once at shutdown."""

    async def channel_started(self, channel: Any) -> None:
        """Called after a channel starts (create, restart, start-up)."""

    async def channel_stopped(self, channel: Any) -> None:
        """Called after a channel stops (delete, restart)."""

    def health_problems(self) -> list[dict[str, str]]:
        """What is wrong with the plugin now, as ``/health`` errors
        (``type``, ``message``); empty when all is well."""
        return []
