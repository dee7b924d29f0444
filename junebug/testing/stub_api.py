"""Drive an in-memory Junebug's API without sockets or wall-clock time.

:class:`StubApi` builds an embedded Junebug on a :class:`~twisted.internet.task.Clock`,
starts it without listening and sends requests to ``api.resource()`` through
treq's :class:`~treq.testing.StubTreq`.  Time moves only when the test calls
:meth:`StubApi.advance`, so rates, TTLs and retries are exact.  Use
:class:`~junebug.testing.api.ApiDriver` when a test needs a real port.
"""

from __future__ import annotations

import shutil
import tempfile
from typing import Any, cast

from treq.testing import StubTreq
from twisted.internet.task import Clock

from junebug.config import build_config
from junebug.reactors import JunebugReactor
from junebug.service import Junebug, build
from junebug.testing.api import FAKE_TYPES, json_request


class StubApi:
    """An embedded Junebug on a fake clock and a stub HTTP client for its API."""

    #: What the API's URLs start with (as in redirects' ``Location``).
    base = "http://junebug"

    def __init__(self) -> None:
        self.clock = Clock()
        self.junebug: Junebug | None = None
        self.client: Any = None  # StubTreq sets its methods at run time
        self._logs = tempfile.mkdtemp(prefix="junebug-logs-")

    async def start(self, **overrides: Any) -> Junebug:
        """Build and start Junebug; ``overrides`` are config keys."""
        layer: dict[str, Any] = {
            "embedded": True,
            "logging_path": self._logs,
            "channels": dict(FAKE_TYPES),
        }
        layer.update(overrides)
        # Only a Clock: an embedded Junebug that does not listen schedules
        # calls and nothing else, so it needs no whole reactor here.
        reactor = cast("JunebugReactor", self.clock)
        self.junebug = build(reactor, build_config(layer), listen=False)
        await self.junebug.start()
        self.client = StubTreq(self.junebug.api.resource())
        return self.junebug

    def transport(self, channel_id: str) -> Any:
        """The running transport of ``channel_id``, found through the registry
        (``None`` if the channel is not running or its transport failed)."""
        assert self.junebug is not None, "start() first"
        channel = self.junebug.channels.running(channel_id)
        return None if channel is None else channel.transport

    def advance(self, seconds: float = 0.0) -> None:
        """Move the clock on (``0`` runs what is due now, e.g. deliveries)."""
        self.clock.advance(seconds)

    async def stop(self) -> None:
        if self.junebug is not None:
            await self.junebug.stop()
            self.junebug = None
        shutil.rmtree(self._logs, ignore_errors=True)

    async def request(
        self, method: str, path: str, body: Any = None, raw: bytes | None = None
    ) -> tuple[int, Any, Any]:
        """Send ``body`` as JSON (or ``raw`` bytes as they are); return (status
        code, parsed JSON body, headers).  Redirects are not followed."""
        assert self.client is not None, "start() first"
        return await json_request(self.client, method, self.base + path, body, raw)
