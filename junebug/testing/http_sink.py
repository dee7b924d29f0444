"""A local HTTP server that records what is POSTed to it (mo_url, event_url...)."""

from __future__ import annotations

import json
from typing import Any

import attrs
from twisted.internet.defer import Deferred, DeferredQueue
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.interfaces import IListeningPort
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site

from junebug.reactors import TimeTCPReactor


@attrs.frozen
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    #: The path with its query string, as sent.
    uri: str = ""


class _Recorder(Resource):
    isLeaf = True

    def __init__(self, sink: HttpSink) -> None:
        super().__init__()
        self.sink = sink

    def render(self, request: Any) -> bytes:
        raw = request.content.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        headers = {
            k.decode().lower(): v[0].decode()
            for k, v in request.requestHeaders.getAllRawHeaders()
        }
        self.sink.queue.put(
            Received(
                request.method.decode(),
                request.path.decode(),
                headers,
                body,
                request.uri.decode(),
            )
        )
        request.setResponseCode(self.sink.response_code)
        if self.sink.holding:
            self.sink.held.append(request)
            return NOT_DONE_YET  # type: ignore[return-value]
        return self.sink.response_body


class HttpSink:
    """Records requests; ``await sink.next(clock)`` returns the next one."""

    def __init__(self, reactor: TimeTCPReactor) -> None:
        self.reactor = reactor
        self.queue: DeferredQueue[Received] = DeferredQueue()
        self.response_code = 200
        #: What every request is answered (Jasmin's clients: ``ACK/Jasmin``).
        self.response_body = b"{}"
        self.port: IListeningPort | None = None
        #: While True, requests are recorded but answered only on release().
        self.holding = False
        self.held: list[Any] = []

    def release(self) -> None:
        """Answer every held request, and hold no more."""
        self.holding = False
        held, self.held = self.held, []
        for request in held:
            if not request._disconnected:
                request.write(self.response_body)
                request.finish()

    async def start(self) -> str:
        endpoint = TCP4ServerEndpoint(self.reactor, 0, interface="127.0.0.1")
        self.port = await endpoint.listen(Site(_Recorder(self)))
        return f"http://127.0.0.1:{self.port.getHost().port}"  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self.port is not None:
            await self.port.stopListening()  # type: ignore[misc]
            self.port = None

    async def next(self, timeout: float = 10.0) -> Received:
        d: Deferred[Received] = self.queue.get()
        d.addTimeout(timeout, self.reactor)
        return await d
