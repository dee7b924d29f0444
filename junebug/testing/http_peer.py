"""A local HTTP server playing an SMS aggregator's API: records every request
and answers with whatever the test queued (or a default answer)."""

from __future__ import annotations

import json
from collections import deque
from typing import Any

import attrs
from twisted.internet.defer import Deferred, DeferredQueue
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.interfaces import IListeningPort
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site

from junebug.reactors import TimeTCPReactor


@attrs.frozen
class PeerRequest:
    method: str
    path: str
    args: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def arg(self, name: str) -> str | None:
        values = self.args.get(name)
        return values[0] if values else None


@attrs.frozen
class PeerAnswer:
    code: int = 200
    body: bytes = b"{}"
    content_type: str = "application/json"
    #: Seconds to wait before answering (to test client timeouts).
    delay: float = 0.0


class _Recorder(Resource):
    isLeaf = True

    def __init__(self, peer: HttpPeer) -> None:
        super().__init__()
        self.peer = peer

    def render(self, request: Any) -> Any:
        args = {
            k.decode(): [v.decode("utf-8", "replace") for v in vs]
            for k, vs in (request.args or {}).items()
        }
        headers = {
            k.decode().lower(): v[0].decode("latin-1")
            for k, v in request.requestHeaders.getAllRawHeaders()
        }
        request.content.seek(0)
        recorded = PeerRequest(
            request.method.decode(),
            request.path.decode(),
            args,
            headers,
            request.content.read(),
        )
        self.peer.requests.append(recorded)
        self.peer.queue.put(recorded)
        answer = self.peer.answers.popleft() if self.peer.answers else self.peer.default

        def respond() -> None:
            if request.finished or request._disconnected:
                return
            request.setResponseCode(answer.code)
            request.setHeader(b"Content-Type", answer.content_type.encode())
            request.write(answer.body)
            request.finish()

        if answer.delay:
            call = self.peer.reactor.callLater(answer.delay, respond)
            self.peer.delayed.append(call)
            return NOT_DONE_YET
        request.setResponseCode(answer.code)
        request.setHeader(b"Content-Type", answer.content_type.encode())
        return answer.body


class HttpPeer:
    """``await peer.start()`` returns its base URL; ``await peer.next()`` the
    next request.  ``answer(...)`` queues one answer; ``default`` is used when
    none is queued."""

    def __init__(self, reactor: TimeTCPReactor) -> None:
        self.reactor = reactor
        self.requests: list[PeerRequest] = []
        self.queue: DeferredQueue[PeerRequest] = DeferredQueue()
        self.answers: deque[PeerAnswer] = deque()
        self.default = PeerAnswer()
        self.delayed: list[Any] = []
        self.port: IListeningPort | None = None

    def answer(self, code: int = 200, body: Any = None, **kw: Any) -> None:
        if body is None:
            raw = b"{}"
        elif isinstance(body, bytes):
            raw = body
        elif isinstance(body, str):
            raw = body.encode()
            kw.setdefault("content_type", "text/plain")
        else:
            raw = json.dumps(body).encode()
        self.answers.append(PeerAnswer(code, raw, **kw))

    async def start(self) -> str:
        endpoint = TCP4ServerEndpoint(self.reactor, 0, interface="127.0.0.1")
        site = Site(_Recorder(self), reactor=self.reactor)
        self.port = await endpoint.listen(site)
        return f"http://127.0.0.1:{self.port.getHost().port}"  # type: ignore[union-attr]

    async def stop(self) -> None:
        for call in self.delayed:
            if call.active():
                call.cancel()
        if self.port is not None:
            await self.port.stopListening()  # type: ignore[misc]
            self.port = None

    async def next(self, timeout: float = 10.0) -> PeerRequest:
        d: Deferred[PeerRequest] = self.queue.get()
        d.addTimeout(timeout, self.reactor)
        return await d
