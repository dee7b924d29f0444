"""Keep-alive HTTP and HTTPS connections for the POSTs on every message's path.

Each ``mo_url`` and ``event_url`` POST through ``twisted.web.client.Agent``
costs about 350 microseconds of CPU (request and header objects, a stateful
response parser, pooling with timers); on a gateway doing thousands a second
that was the largest single cost.  :class:`ConnectionPool` does the same job
for ``http://`` and ``https://`` URLs with one small protocol: the request is
written as one bytes string and the response is parsed from a buffer.  It is
HTTP/1.1 with one request per connection at a time (no pipelining),
keep-alive, bodies with ``Content-Length``, chunked or delimited by the close,
and ``1xx`` interim answers skipped.  The dialects' plain requests (a
Kannel ``dlr-url`` GET, a Jasmin form POST) take it too; URLs it cannot
write as they are (non-ASCII, userinfo) keep using the agent.

HTTPS connections verify the server's certificate and host name
(:class:`junebug.tls.TlsSettings`: the platform's CAs or a ``ca_file``); a
certificate that does not verify fails the request, naming the reason.
Every request says ``User-Agent: Junebug/<version>``.

A request that finds its reused idle connection closed before any byte of an
answer arrived is sent once more on a new connection: the server closed the
idle connection as it was being reused, and never saw the request.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Final
from urllib.parse import urlsplit

import attrs
from twisted.internet.defer import Deferred, gatherResults, succeed
from twisted.internet.endpoints import connectProtocol, wrapClientTLS
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IDelayedCall, IStreamClientEndpoint
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from typing_extensions import override

from junebug import __version__
from junebug.endpoints import tcp_endpoint
from junebug.http.networks import CallbackNetworks, GuardedEndpoint
from junebug.reactors import TimeTCPReactor
from junebug.tls import TlsSettings

__all__ = ["USER_AGENT", "ConnectionPool", "PostTarget", "ResponseError", "post_target"]

#: How many parsed URLs are remembered (a pool posts to few distinct URLs).
TARGET_CACHE_SIZE: Final = 1024
#: The most header bytes an answer may have.
MAX_HEADER_BYTES: Final = 64 * 1024
CONNECT_TIMEOUT: Final = 30.0
#: Idle keep-alive connections are closed after this many seconds.
IDLE_TIMEOUT: Final = 120.0
#: What every request says it is.
USER_AGENT: Final = f"Junebug/{__version__}"


class ResponseError(Exception):
    """The server's answer could not be read (malformed, or cut off)."""


class _StaleConnection(Exception):
    """A reused connection closed before any byte of an answer arrived."""


_Key = tuple[str, int, bool]  # host, port, TLS


@attrs.frozen
class PostTarget:
    """Where an ``http://`` or ``https://`` URL's request goes, and the start
    of the request."""

    host: str
    port: int
    tls: bool
    # "POST <target> HTTP/1.1\r\nHost: <host>\r\nUser-Agent: Junebug/...\r\n"
    head: bytes

    @property
    def key(self) -> _Key:
        return (self.host, self.port, self.tls)


def post_target(url: str) -> PostTarget | None:
    """The target of an ``http://`` or ``https://`` URL, or ``None`` for
    anything else (non-ASCII, userinfo, a bad port): those go through the
    agent."""
    if url.startswith("http://"):
        tls = False
    elif url.startswith("https://"):
        tls = True
    else:
        return None
    if not url.isascii():
        return None
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if tls else 80)
    except ValueError:
        return None
    host = parts.hostname
    if not host or "@" in parts.netloc or any(c in url for c in " \r\n"):
        return None
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    head = (
        f"POST {target} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        f"User-Agent: {USER_AGENT}\r\n"
    ).encode("ascii")
    return PostTarget(host=host, port=port, tls=tls, head=head)


class _Answer:
    """Parses one response from a byte buffer."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.code: int | None = None
        self.keep_alive = True
        self._length: int | None = None
        self._taken = 0
        self._chunked = False
        self._chunk_left: int | None = None
        self._body: list[bytes] = []
        self._size = 0
        self.truncated = False
        self.started = False

    def _keep(self, data: bytes) -> bool:
        """Keep body bytes up to the limit; False once over it."""
        room = self.limit - self._size
        if len(data) > room:
            self._body.append(data[:room])
            self._size = self.limit
            self.truncated = True
            return False
        self._body.append(data)
        self._size += len(data)
        return True

    @property
    def delimited_by_close(self) -> bool:
        """True for an answer whose body runs to the end of the connection."""
        return self.code is not None and self._length is None and not self._chunked

    @property
    def body(self) -> bytes:
        return b"".join(self._body)

    def feed(self, buffer: bytearray) -> bool:
        """Consume what it can of ``buffer``; True when the answer is complete."""
        if buffer:
            self.started = True
        while self.code is None:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(buffer) > MAX_HEADER_BYTES:
                    raise ResponseError("response headers too long")
                return False
            head = bytes(buffer[:end]).decode("latin-1")
            del buffer[: end + 4]
            self._parse_head(head)
        if self._chunked:
            return self._feed_chunked(buffer)
        if self._length is None:  # delimited by the close
            if buffer and not self._keep(bytes(buffer)):
                buffer.clear()
                return True
            buffer.clear()
            return False
        wanted = self._length - self._taken
        data = bytes(buffer[:wanted])
        del buffer[:wanted]
        self._taken += len(data)
        if not self._keep(data):
            return True
        return self._taken >= self._length

    def _parse_head(self, head: str) -> None:
        status, *lines = head.split("\r\n")
        parts = status.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
            raise ResponseError(f"bad status line {status[:80]!r}")
        try:
            code = int(parts[1])
        except ValueError:
            raise ResponseError(f"bad status line {status[:80]!r}") from None
        if 100 <= code < 200:
            return  # an interim answer: the real one follows
        self.code = code
        self.keep_alive = parts[0] == "HTTP/1.1"
        self._taken = 0
        for line in lines:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            value = value.strip()
            if name == "content-length":
                try:
                    self._length = int(value)
                except ValueError:
                    raise ResponseError(f"bad Content-Length {value!r}") from None
            elif name == "transfer-encoding":
                self._chunked = value.lower() == "chunked"
            elif name == "connection":
                tokens = {t.strip().lower() for t in value.split(",")}
                if "close" in tokens:
                    self.keep_alive = False
                elif "keep-alive" in tokens:
                    self.keep_alive = True
        if self._chunked:
            self._length = None
        elif code in (204, 304):
            self._length = 0
        if self._length is None and not self._chunked:
            self.keep_alive = False

    def _feed_chunked(self, buffer: bytearray) -> bool:
        while True:
            if self._chunk_left is None:
                end = buffer.find(b"\r\n")
                if end < 0:
                    return False
                size_text = bytes(buffer[:end]).split(b";", 1)[0].strip()
                try:
                    size = int(size_text, 16)
                except ValueError:
                    raise ResponseError("bad chunk size") from None
                del buffer[: end + 2]
                if size == 0:
                    self._chunk_left = -1
                else:
                    self._chunk_left = size
            if self._chunk_left == -1:  # trailers, to an empty line
                end = buffer.find(b"\r\n")
                if end < 0:
                    return False
                del buffer[: end + 2]
                if end == 0:
                    return True
                continue
            if len(buffer) < self._chunk_left + 2:
                return False
            data = bytes(buffer[: self._chunk_left])
            del buffer[: self._chunk_left + 2]
            self._chunk_left = None
            if not self._keep(data):
                return True


class _Connection(Protocol):
    """One HTTP/1.1 connection: one request at a time."""

    def __init__(self, pool: ConnectionPool, key: _Key) -> None:
        self._pool = pool
        self._key = key
        self._buffer = bytearray()
        self._answer: _Answer | None = None
        self._waiting: Deferred[tuple[int, bytes, bool]] | None = None
        self.reused = False
        self.closed = False
        self.idle_since = 0.0
        self._lost: list[Deferred[None]] = []

    def close(self) -> Deferred[None]:
        """Close the connection; fires once it is closed."""
        self.closed = True
        if self.transport is None or not self.connected:
            return succeed(None)
        lost: Deferred[None] = Deferred()
        self._lost.append(lost)
        self.transport.loseConnection()
        return lost

    def send(self, request: bytes, limit: int) -> Deferred[tuple[int, bytes, bool]]:
        self._answer = _Answer(limit)
        self._waiting = Deferred(lambda _: self._abort())
        assert self.transport is not None
        self.transport.write(request)
        return self._waiting

    def _abort(self) -> None:
        self._answer = None
        self._waiting = None
        self.closed = True
        if self.transport is not None:
            self.transport.abortConnection()  # type: ignore[attr-defined]

    @override
    def dataReceived(self, data: bytes) -> None:
        if self._answer is None:
            # Bytes nobody asked for: the connection cannot be trusted.
            self._abort()
            return
        self._buffer += data
        answer = self._answer
        try:
            complete = answer.feed(self._buffer)
        except ResponseError as exc:
            self._fail(Failure(exc))
            return
        if complete:
            self._finish(answer, reusable=answer.keep_alive and not answer.truncated)

    def _finish(self, answer: _Answer, *, reusable: bool) -> None:
        waiting = self._waiting
        self._answer = None
        self._waiting = None
        assert answer.code is not None
        if reusable and not self._buffer:
            self._pool.release(self._key, self)
        else:
            self.close()
        if waiting is not None:
            waiting.callback((answer.code, answer.body, answer.truncated))

    def _fail(self, reason: Failure) -> None:
        waiting = self._waiting
        self._abort()
        if waiting is not None:
            waiting.errback(reason)

    @override
    def connectionLost(self, reason: Failure | None = None) -> None:
        reason = reason or Failure(ConnectionDone())
        self.closed = True
        self._pool.forget(self._key, self)
        lost, self._lost = self._lost, []
        for waiter in lost:
            waiter.callback(None)
        answer, waiting = self._answer, self._waiting
        self._answer = None
        self._waiting = None
        if waiting is None or answer is None:
            return
        if answer.code is not None and answer.delimited_by_close:
            waiting.callback((answer.code, answer.body, answer.truncated))
        elif self.reused and not answer.started:
            waiting.errback(Failure(_StaleConnection()))
        else:
            waiting.errback(
                Failure(ResponseError(f"connection lost: {reason.getErrorMessage()}"))
            )


class ConnectionPool:
    """Idle keep-alive connections by ``(host, port, TLS)``, at most
    ``max_per_host`` each, closed after :data:`IDLE_TIMEOUT` seconds unused;
    connections are made on the injected reactor, HTTPS ones verified with
    ``tls`` (default: the platform's CAs)."""

    def __init__(
        self,
        reactor: TimeTCPReactor,
        max_per_host: int,
        idle_timeout: float = IDLE_TIMEOUT,
        tls: TlsSettings | None = None,
        *,
        networks: CallbackNetworks | None = None,
    ) -> None:
        self._reactor = reactor
        self._tls = tls
        #: When set, new connections go through :class:`GuardedEndpoint`.
        self._networks = networks
        self._max_per_host = max_per_host
        self._idle_timeout = idle_timeout
        self._idle: dict[_Key, deque[_Connection]] = {}
        self._targets: dict[str, PostTarget | None] = {}
        self._sweeping: IDelayedCall | None = None

    def target(self, url: str) -> PostTarget | None:
        """:func:`post_target`, remembered."""
        try:
            return self._targets[url]
        except KeyError:
            pass
        if len(self._targets) >= TARGET_CACHE_SIZE:
            self._targets.clear()
        found = self._targets[url] = post_target(url)
        return found

    async def post(
        self, target: PostTarget, headers: bytes, body: bytes, limit: int
    ) -> tuple[int, bytes, bool]:
        """POST ``body``: ``(code, up to limit bytes of body, truncated)``.

        ``headers`` are complete header lines (each ending ``\\r\\n``).
        """
        return await self.request(target, b"POST", headers, body, limit)

    async def request(
        self,
        target: PostTarget,
        method: bytes,
        headers: bytes,
        body: bytes | None,
        limit: int,
    ) -> tuple[int, bytes, bool]:
        """As :meth:`post`, with another ``method`` (``GET``); a ``body`` of
        None sends no body and no ``Content-Length``."""
        head = target.head
        if method != b"POST":
            head = method + head[4:]  # a target's head starts with "POST"
        if body is None:
            request = b"".join((head, headers, b"\r\n"))
        else:
            request = b"".join(
                (head, headers, b"Content-Length: %d\r\n\r\n" % len(body), body)
            )
        key = target.key
        connection = self._take(key)
        if connection is not None:
            try:
                return await connection.send(request, limit)
            except _StaleConnection:
                pass
        connection = await self._connect(key)
        return await connection.send(request, limit)

    def _take(self, key: _Key) -> _Connection | None:
        idle = self._idle.get(key)
        while idle:
            connection = idle.pop()
            if not connection.closed:
                connection.reused = True
                return connection
        return None

    async def _connect(self, key: _Key) -> _Connection:
        host, port, tls = key
        endpoint: IStreamClientEndpoint
        if self._networks is None:
            endpoint = tcp_endpoint(self._reactor, host, port, CONNECT_TIMEOUT)
        else:
            endpoint = GuardedEndpoint(
                self._reactor, host, port, self._networks, timeout=CONNECT_TIMEOUT
            )
        if tls:
            if self._tls is None:
                self._tls = TlsSettings()
            endpoint = wrapClientTLS(self._tls.creator(host), endpoint)
        connection: _Connection = await connectProtocol(
            endpoint, _Connection(self, key)
        )
        transport: Any = connection.transport
        if hasattr(transport, "setTcpNoDelay"):
            transport.setTcpNoDelay(True)
        return connection

    def release(self, key: _Key, connection: _Connection) -> None:
        idle = self._idle.setdefault(key, deque())
        if len(idle) >= self._max_per_host:
            connection.close()
            return
        connection.idle_since = self._reactor.seconds()
        idle.append(connection)
        if self._sweeping is None:
            self._sweeping = self._reactor.callLater(self._idle_timeout, self._sweep)

    def _sweep(self) -> None:
        """Close connections idle for the idle timeout or more."""
        self._sweeping = None
        cutoff = self._reactor.seconds() - self._idle_timeout
        remaining = False
        for idle in self._idle.values():
            # Connections are appended as they are released: oldest first.
            while idle and idle[0].idle_since <= cutoff:
                idle.popleft().close()
            remaining = remaining or bool(idle)
        if remaining:
            self._sweeping = self._reactor.callLater(
                self._idle_timeout / 2, self._sweep
            )

    def forget(self, key: _Key, connection: _Connection) -> None:
        idle = self._idle.get(key)
        if idle is not None and connection in idle:
            idle.remove(connection)

    def close(self) -> Deferred[None]:
        """Close the idle connections; fires once they are closed."""
        if self._sweeping is not None and self._sweeping.active():
            self._sweeping.cancel()
        self._sweeping = None
        connections = [c for idle in self._idle.values() for c in idle]
        self._idle.clear()
        closing = [connection.close() for connection in connections]
        return gatherResults(closing).addCallback(lambda _: None)
