"""A raw TCP client for HTTP servers: bytes exactly as given, every byte of
the answer, and whether the server closed the connection.  For the defects
an HTTP client library would hide (framing, unread bodies, slow headers)."""

from __future__ import annotations

import json
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.interfaces import IReactorTCP, IReactorTime
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure

from junebug.reactors import TimeTCPReactor


class RawClient(Protocol):
    """Collects what the server sends; ``closed`` fires when it hangs up."""

    def __init__(self) -> None:
        self.received = b""
        self.closed: Deferred[bytes] = Deferred()

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        if not self.closed.called:
            self.closed.callback(self.received)

    def send(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    async def until_closed(self, reactor: IReactorTime, timeout: float = 10.0) -> bytes:
        """Everything received, once the server has closed the connection."""
        self.closed.addTimeout(timeout, reactor)
        return await self.closed

    def close(self) -> None:
        if self.transport is not None and not self.closed.called:
            self.transport.abortConnection()  # type: ignore[attr-defined]


async def connect(
    reactor: IReactorTCP, port: int, host: str = "127.0.0.1"
) -> RawClient:
    endpoint = TCP4ClientEndpoint(reactor, host, port, timeout=10)
    client: RawClient = await connectProtocol(endpoint, RawClient())
    return client


async def exchange(
    reactor: TimeTCPReactor, port: int, data: bytes, timeout: float = 10.0
) -> bytes:
    """Send ``data``; everything answered until the server closes."""
    client = await connect(reactor, port)
    client.send(data)
    try:
        return await client.until_closed(reactor, timeout)
    finally:
        client.close()


def responses(raw: bytes) -> list[tuple[int, dict[str, str], bytes]]:
    """Split answers framed by ``Content-Length`` or chunked encoding into
    (status, headers with lower-case names, body)."""
    found = []
    while raw:
        head, _, rest = raw.partition(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        headers: dict[str, str] = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if headers.get("transfer-encoding") == "chunked":
            body = b""
            while True:
                size_line, _, rest = rest.partition(b"\r\n")
                size = int(size_line, 16)
                body, rest = body + rest[:size], rest[size + 2 :]
                if size == 0:
                    break
        else:
            size = int(headers.get("content-length", "0"))
            body, rest = rest[:size], rest[size:]
        found.append((int(status_line.split()[1]), headers, body))
        raw = rest
    return found


def only_json(raw: bytes) -> tuple[int, dict[str, str], Any]:
    """The single answer in ``raw``, with its JSON body parsed."""
    [(code, headers, body)] = responses(raw)
    return code, headers, json.loads(body)
