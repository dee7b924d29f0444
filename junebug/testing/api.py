"""Drive a whole in-process Junebug over real HTTP, for API tests."""

from __future__ import annotations

import json
import tempfile
from typing import Any

from treq.client import HTTPClient
from twisted.internet.defer import Deferred
from twisted.web.client import Agent, HTTPConnectionPool

from junebug.config import build_config
from junebug.service import Junebug, start_junebug

FAKE_TYPES = {"fake": "junebug.testing.transports.FakeTransport"}


class ApiDriver:
    """A started Junebug on 127.0.0.1:<random port> and a client for it."""

    def __init__(self, reactor: Any) -> None:
        self.reactor = reactor
        self.junebug: Junebug | None = None
        self.base = ""
        self._pool = HTTPConnectionPool(reactor, persistent=False)
        self.client = HTTPClient(Agent(reactor, pool=self._pool))

    async def start(self, **overrides: Any) -> Junebug:
        layer: dict[str, Any] = {
            "embedded": True,
            "interface": "127.0.0.1",
            "port": 0,
            "logging_path": tempfile.mkdtemp(prefix="junebug-logs-"),
            "channels": dict(FAKE_TYPES),
        }
        layer.update(overrides)
        self.junebug = await start_junebug(self.reactor, build_config(layer))
        assert self.junebug.port is not None
        self.base = f"http://127.0.0.1:{self.junebug.port.getHost().port}"  # type: ignore[attr-defined]
        return self.junebug

    def transport(self, channel_id: str) -> Any:
        """The running transport of ``channel_id``, found through the registry
        (``None`` if the channel is not running or its transport failed)."""
        assert self.junebug is not None, "start() first"
        channel = self.junebug.channels.running(channel_id)
        return None if channel is None else channel.transport

    async def stop(self) -> None:
        if self.junebug is not None:
            await self.junebug.stop()
            self.junebug = None
        await self._pool.closeCachedConnections()

    async def request(
        self, method: str, path: str, body: Any = None, raw: bytes | None = None
    ) -> tuple[int, Any, Any]:
        """Send a request; return (status code, parsed JSON body, headers)."""
        data = (
            raw
            if raw is not None
            else (None if body is None else json.dumps(body).encode())
        )
        response = await self.client.request(
            method, self.base + path, data=data, allow_redirects=False
        )
        content = await response.content()
        try:
            parsed = json.loads(content)
        except ValueError:
            parsed = content
        return response.code, parsed, response.headers

    def wait(self, d: Deferred[Any], timeout: float = 10.0) -> Deferred[Any]:
        return d.addTimeout(timeout, self.reactor)
