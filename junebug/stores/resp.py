"""A small Redis client: RESP2 over one pipelined, reconnecting connection.

It replaced txredisapi on the message path: txredisapi cost 60 to 160
microseconds of CPU per command (a pooled handler wrapped in
``inlineCallbacks``, a ``DeferredQueue`` per reply, and a pause and
``callLater`` after every bulk reply) and dialled with the global reactor.
:class:`RespClient` writes each command as one bytes string, keeps the
waiting Deferreds in order, and parses replies straight from the buffer.

- One connection; commands are pipelined on it (Redis answers in order).
- On connect it authenticates (``AUTH``) if there is a password and selects
  the database (``SELECT``, always: a server that does not answer the
  handshake is found at once).  A refused password or database ends
  :meth:`RespClient.start` with :class:`RedisSetupError`.
- A lost connection fails the commands waiting on it with
  :class:`RedisConnectionError` and is dialled again, backing off from 0.1 s
  to :data:`MAX_RECONNECT_DELAY`.  Commands issued meanwhile wait for it.
- A command that has had no reply for ``timeout`` seconds drops the
  connection (so a half-open one is redialled); one timer per connection
  covers every waiting command.

Error replies are returned as :class:`RedisReplyError` values (never raised
by the parser), so one bad command does not disturb the others.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any, Final

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.error import ConnectingCancelledError
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.protocol import Protocol
from twisted.internet.task import deferLater
from twisted.python.failure import Failure
from typing_extensions import override

__all__ = [
    "RedisConnectionError",
    "RedisReplyError",
    "RedisSetupError",
    "RespClient",
    "encode_command",
    "parse_reply",
]

MAX_RECONNECT_DELAY: Final = 5.0
FIRST_RECONNECT_DELAY: Final = 0.1

_CRLF: Final = b"\r\n"


class RedisReplyError(Exception):
    """An error reply (``-ERR ...``, ``-WRONGTYPE ...``) to one command."""


class RedisConnectionError(Exception):
    """No connection to Redis, or it was lost before the reply came."""


class RedisSetupError(Exception):
    """Redis refused the ``AUTH`` or ``SELECT`` of the handshake."""


class _Incomplete(Exception):
    """The buffer ends inside a reply."""


_INCOMPLETE: Final = _Incomplete()


def encode_command(args: tuple[str | int | bytes, ...]) -> bytes:
    """One command in RESP: an array of bulk strings."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        if isinstance(arg, str):
            data = arg.encode("utf-8")
        elif isinstance(arg, bytes):
            data = arg
        else:
            data = str(arg).encode("ascii")
        parts.append(b"$%d\r\n" % len(data))
        parts.append(data)
        parts.append(_CRLF)
    return b"".join(parts)


def parse_reply(buffer: bytes, pos: int) -> tuple[object, int]:
    """The reply starting at ``pos`` and the position after it.

    Bulk strings are ``str`` when they are UTF-8 and ``bytes`` otherwise; a
    nil is ``None``; an error is a :class:`RedisReplyError`.  Raises
    ``_Incomplete`` if the buffer ends first.
    """
    end = buffer.find(_CRLF, pos)
    if end < 0:
        raise _INCOMPLETE
    kind = buffer[pos]
    if kind == 36:  # $ bulk string
        length = int(buffer[pos + 1 : end])
        if length < 0:
            return None, end + 2
        start = end + 2
        stop = start + length
        if len(buffer) < stop + 2:
            raise _INCOMPLETE
        data = buffer[start:stop]
        try:
            return data.decode("utf-8"), stop + 2
        except UnicodeDecodeError:
            return data, stop + 2
    if kind == 58:  # : integer
        return int(buffer[pos + 1 : end]), end + 2
    if kind == 43:  # + simple string
        return buffer[pos + 1 : end].decode("utf-8", "replace"), end + 2
    if kind == 45:  # - error
        text = buffer[pos + 1 : end].decode("utf-8", "replace")
        return RedisReplyError(text), end + 2
    if kind == 42:  # * array
        count = int(buffer[pos + 1 : end])
        if count < 0:
            return None, end + 2
        items = []
        pos = end + 2
        for _ in range(count):
            item, pos = parse_reply(buffer, pos)
            items.append(item)
        return items, pos
    raise ValueError(f"not a RESP reply: {buffer[pos : pos + 40]!r}")


class _RespProtocol(Protocol):
    """One connection: commands out, replies matched to them in order."""

    def __init__(self, clock: IReactorTime, timeout: float) -> None:
        self._clock = clock
        self._timeout = timeout
        self._buffer = b""
        self._waiting: deque[tuple[Deferred[object], float]] = deque()
        self._timer: IDelayedCall | None = None
        self.lost: Deferred[None] = Deferred()
        self.ready = False
        self.open = False
        self.on_lost: Callable[[_RespProtocol], None] | None = None

    @override
    def connectionMade(self) -> None:
        self.open = True
        set_no_delay = getattr(self.transport, "setTcpNoDelay", None)
        if set_no_delay is not None:
            set_no_delay(True)  # small commands: no waiting for delayed ACKs

    def execute(self, args: tuple[str | int | bytes, ...]) -> Deferred[object]:
        if not self.open:
            raise RedisConnectionError("the connection is closed")
        reply: Deferred[object] = Deferred()
        if not self._waiting and self._timer is None:
            self._timer = self._clock.callLater(self._timeout, self._check)
        self._waiting.append((reply, self._clock.seconds()))
        assert self.transport is not None
        self.transport.write(encode_command(args))
        return reply

    def _check(self) -> None:
        self._timer = None
        if not self._waiting:
            return
        waited = self._clock.seconds() - self._waiting[0][1]
        if waited >= self._timeout:
            self.drop(
                RedisConnectionError(
                    f"no reply from Redis within {self._timeout:g}s; "
                    "dropping the connection"
                )
            )
            return
        self._timer = self._clock.callLater(self._timeout - waited, self._check)

    def drop(self, reason: Exception) -> None:
        """Fail everything waiting with ``reason`` and abort the connection."""
        self._fail_all(reason)
        self.open = False
        if self.transport is not None:
            self.transport.abortConnection()  # type: ignore[attr-defined]

    def _fail_all(self, reason: Exception) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        waiting, self._waiting = self._waiting, deque()
        for reply, _ in waiting:
            reply.errback(Failure(reason))

    @override
    def dataReceived(self, data: bytes) -> None:
        buffer = self._buffer + data if self._buffer else data
        pos = 0
        size = len(buffer)
        waiting = self._waiting
        replies = []
        try:
            while pos < size:
                reply, pos = parse_reply(buffer, pos)
                replies.append(reply)
        except _Incomplete:
            pass
        except ValueError as exc:
            self.drop(RedisConnectionError(f"unreadable reply: {exc}"))
            return
        self._buffer = buffer[pos:]
        for reply in replies:
            if not waiting:
                self.drop(RedisConnectionError("a reply nobody asked for"))
                return
            deferred, _ = waiting.popleft()
            deferred.callback(reply)
        if not waiting and self._timer is not None:
            if self._timer.active():
                self._timer.cancel()
            self._timer = None

    @override
    def connectionLost(self, reason: Failure | None = None) -> None:
        self.open = False
        self.ready = False
        why = reason.getErrorMessage() if reason is not None else "closed"
        self._fail_all(RedisConnectionError(f"connection lost: {why}"))
        if self.on_lost is not None:
            self.on_lost(self)
        self.lost.callback(None)


class RespClient:
    """One pipelined connection to Redis, redialled when lost.

    ``reactor`` dials; ``clock`` times (they are the same outside tests).
    """

    def __init__(
        self,
        reactor: Any,
        clock: IReactorTime,
        host: str,
        port: int,
        *,
        db: int = 0,
        password: str | None = None,
        timeout: float = 10.0,
        connect_timeout: float = 10.0,
    ) -> None:
        self._reactor = reactor
        self._clock = clock
        self._host = host
        self._port = port
        self._db = db
        self._password = password
        self._timeout = timeout
        self._connect_timeout = connect_timeout
        self.protocol: _RespProtocol | None = None
        self._waiters: list[Deferred[_RespProtocol]] = []
        self._closed = False
        self._dialling = False
        self._redial: IDelayedCall | None = None
        self._redialling: Deferred[None] | None = None
        self._delay = FIRST_RECONNECT_DELAY

    @property
    def address(self) -> str:
        return f"{self._host}:{self._port}"

    def is_connected(self) -> bool:
        protocol = self.protocol
        return not self._closed and protocol is not None and protocol.ready

    async def start(self) -> None:
        """Connect (retrying refused connections) and do the handshake."""
        self._dialling = True
        while True:
            try:
                await self._dial()
                return
            except RedisSetupError:
                self._dialling = False
                raise
            except CancelledError:
                self._dialling = False
                raise
            except ConnectingCancelledError as exc:  # cancelled while dialling
                self._dialling = False
                raise CancelledError() from exc
            except Exception:
                delay = self._delay
                self._delay = min(self._delay * 2, MAX_RECONNECT_DELAY)
                await deferLater(self._clock, delay, lambda: None)

    async def _dial(self) -> None:
        endpoint = TCP4ClientEndpoint(
            self._reactor, self._host, self._port, timeout=self._connect_timeout
        )
        protocol = await connectProtocol(
            endpoint, _RespProtocol(self._clock, self._timeout)
        )
        try:
            if self._password is not None:
                reply = await protocol.execute(("AUTH", self._password))
                if isinstance(reply, RedisReplyError):
                    raise RedisSetupError(f"authentication failed: {reply}")
            reply = await protocol.execute(("SELECT", self._db))
            if isinstance(reply, RedisReplyError):
                raise RedisSetupError(f"cannot select dbid {self._db}: {reply}")
        except BaseException:
            protocol.drop(RedisConnectionError("handshake failed"))
            raise
        if self._closed:
            protocol.drop(RedisConnectionError("the client is closed"))
            raise RedisConnectionError("the client is closed")
        protocol.ready = True
        protocol.on_lost = self._lost
        self.protocol = protocol
        self._dialling = False
        self._delay = FIRST_RECONNECT_DELAY
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.callback(protocol)

    def _lost(self, protocol: _RespProtocol) -> None:
        if self.protocol is protocol:
            self.protocol = None
        if not self._closed and not self._dialling:
            self._schedule_redial()

    def _schedule_redial(self) -> None:
        self._dialling = True
        self._redial = self._clock.callLater(self._delay, self._redial_now)
        self._delay = min(self._delay * 2, MAX_RECONNECT_DELAY)

    def _redial_now(self) -> None:
        self._redial = None
        if self._closed:
            return

        def failed(failure: Failure) -> None:
            if not self._closed:
                self._schedule_redial()

        def done(result: object) -> object:
            self._redialling = None
            return result

        redialling = Deferred.fromCoroutine(self._dial())
        self._redialling = redialling
        redialling.addBoth(done).addErrback(failed)

    def execute(self, *args: str | int | bytes) -> Deferred[object]:
        """Send one command; fires with its reply (errors as values)."""
        if self._closed:
            raise RedisConnectionError("the client is closed")
        protocol = self.protocol
        if protocol is not None and protocol.open:
            return protocol.execute(args)
        waiter: Deferred[_RespProtocol] = Deferred(self._forget_waiter)
        self._waiters.append(waiter)
        return waiter.addCallback(lambda connected: connected.execute(args))

    def _forget_waiter(self, waiter: Deferred[_RespProtocol]) -> None:
        if waiter in self._waiters:
            self._waiters.remove(waiter)

    async def close(self) -> None:
        """Close the connection and stop redialling; waiting commands fail."""
        if self._closed:
            return
        self._closed = True
        if self._redial is not None and self._redial.active():
            self._redial.cancel()
        if self._redialling is not None:
            self._redialling.cancel()
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.errback(Failure(RedisConnectionError("the client is closed")))
        protocol, self.protocol = self.protocol, None
        if protocol is not None and protocol.open:
            assert protocol.transport is not None
            protocol.transport.loseConnection()
            await protocol.lost
