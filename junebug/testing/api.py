"""Drive a whole in-process Junebug over real HTTP, for API tests."""

from __future__ import annotations

import json
import tempfile
from typing import Any

from treq.client import HTTPClient
from twisted.internet.defer import Deferred
from twisted.web.client import Agent, HTTPConnectionPool

from junebug.config import build_config
from junebug.reactors import JunebugReactor
from junebug.service import Junebug, build

FAKE_TYPES = {"fake": "junebug.testing.transports.FakeTransport"}


async def json_request(
    client: Any,
    method: str,
    url: str,
    body: Any = None,
    raw: bytes | None = None,
    headers: dict[bytes, list[bytes]] | None = None,
) -> tuple[int, Any, Any]:
    """Send ``body`` as JSON (or ``raw`` bytes as they are) and ``headers``
    with a treq client, not following redirects; return (status code, parsed
    JSON body or the raw bytes if it is not JSON, headers)."""
    data = (
        raw
        if raw is not None
        else (None if body is None else json.dumps(body).encode())
    )
    response = await client.request(
        method, url, data=data, headers=headers, allow_redirects=False
    )
    content = await response.content()
    try:
        parsed = json.loads(content)
    except ValueError:
        parsed = content
    return response.code, parsed, response.headers


class ApiDriver:
    """A started Junebug on 127.0.0.1:<random port> and a client for it."""

    def __init__(self, reactor: JunebugReactor) -> None:
        self.reactor = reactor
        self.junebug: Junebug | None = None
        self._pool = HTTPConnectionPool(reactor, persistent=False)
        self.client = HTTPClient(Agent(reactor, pool=self._pool))

    def build(self, **overrides: Any) -> Junebug:
        """An in-memory Junebug on a random port (``overrides`` are config
        keys), built but not started: :meth:`Junebug.start` it."""
        layer: dict[str, Any] = {
            "embedded": True,
            "interface": "127.0.0.1",
            "port": 0,
            "logging_path": tempfile.mkdtemp(prefix="junebug-logs-"),
            "channels": dict(FAKE_TYPES),
        }
        layer.update(overrides)
        self.junebug = build(self.reactor, build_config(layer))
        return self.junebug

    def transport(self, channel_id: str) -> Any:
        """The running transport of ``channel_id``, found through the registry
        (``None`` if the channel is not running or its transport failed)."""
        assert self.junebug is not None, "start() first"
        channel = self.junebug.channels.running(channel_id)
        return None if channel is None else channel.transport

    async def start(self, **overrides: Any) -> Junebug:
        """Build and start a Junebug; its API is at :attr:`base`."""
        junebug = self.build(**overrides)
        await junebug.start()
        return junebug

    def starting(self, **overrides: Any) -> Deferred[None]:
        """Build a Junebug and start it; return the start, still under way
        (the API listens from the start: :attr:`base` works at once)."""
        junebug = self.build(**overrides)
        return Deferred.fromCoroutine(junebug.start())

    @property
    def base(self) -> str:
        """The API's URL (once started)."""
        port = None if self.junebug is None else self.junebug.port
        assert port is not None, "the API is not listening"
        return f"http://127.0.0.1:{port.getHost().port}"  # type: ignore[attr-defined]

    async def stop(self) -> None:
        if self.junebug is not None:
            await self.junebug.stop()
            self.junebug = None
        await self._pool.closeCachedConnections()

    async def request(
        self, method: str, path: str, body: Any = None, raw: bytes | None = None
    ) -> tuple[int, Any, Any]:
        """Send a request; return (status code, parsed JSON body, headers)."""
        return await json_request(self.client, method, self.base + path, body, raw)

    def wait(self, d: Deferred[Any], timeout: float = 10.0) -> Deferred[Any]:
        return d.addTimeout(timeout, self.reactor)
