"""A real TCP line client, as a person at a telnet prompt would be."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, DeferredQueue
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.interfaces import IReactorTCP, IReactorTime
from twisted.protocols.basic import LineReceiver
from twisted.python.failure import Failure


class LineClient(LineReceiver):
    delimiter = b"\n"

    def __init__(self) -> None:
        self.lines: DeferredQueue[str] = DeferredQueue()
        self.closed: Deferred[None] = Deferred()

    def lineReceived(self, line: bytes) -> None:
        self.lines.put(line.rstrip(b"\r").decode("utf-8", "replace"))

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        if not self.closed.called:
            self.closed.callback(None)

    def say(self, text: str) -> None:
        self.sendLine(text.encode("utf-8"))

    @property
    def address(self) -> str:
        host: Any = self.transport.getHost()  # type: ignore[union-attr]
        return f"{host.host}:{host.port}"

    async def next_line(self, reactor: IReactorTime, timeout: float = 10.0) -> str:
        d: Deferred[str] = self.lines.get()
        d.addTimeout(timeout, reactor)
        return await d

    async def close(self) -> None:
        if self.transport is not None and not self.closed.called:
            self.transport.loseConnection()
            await self.closed


async def connect_line_client(
    reactor: IReactorTCP, port: int, host: str = "127.0.0.1"
) -> LineClient:
    endpoint = TCP4ClientEndpoint(reactor, host, port, timeout=10)
    client: LineClient = await connectProtocol(endpoint, LineClient())
    return client
