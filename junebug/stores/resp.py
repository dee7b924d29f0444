"""A small Redis client: RESP2 over one pipelined, reconnecting connection.

It replaced txredisapi on the message path: txredisapi cost 60 to 160
microseconds of CPU per command (a pooled handler wrapped in
``inlineCallbacks``, a ``DeferredQueue`` per reply, and a pause and
``callLater`` after every bulk reply) and dialled with the global reactor.
:class:`RespClient` writes each command as one bytes string, keeps the
waiting Deferreds in order, and parses replies with ``hiredis``'s C reader
(:func:`reply_reader`), which keeps its place in a reply that arrives over
many reads.

- One connection; commands are pipelined on it (Redis answers in order).
- It dials TCP (a host name may resolve to IPv6), TLS (``rediss://``, the
  server's certificate verified) or a unix socket: see
  :class:`~junebug.stores.redis_address.RedisAddress`.
- On connect it authenticates (``AUTH [username] password``, the ACL form
  with a user name) if there is a password or user name and selects
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
from typing import Final

import hiredis
from OpenSSL import SSL
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.endpoints import connectProtocol
from twisted.internet.error import ConnectingCancelledError
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.protocol import Protocol
from twisted.internet.task import deferLater
from twisted.python.failure import Failure
from typing_extensions import override

from junebug.reactors import TimeTCPReactor
from junebug.stores.redis_address import RedisAddress

__all__ = [
    "RedisConnectionError",
    "RedisReplyError",
    "RedisSetupError",
    "RespClient",
    "encode_command",
    "reply_reader",
]

MAX_RECONNECT_DELAY: Final = 5.0
FIRST_RECONNECT_DELAY: Final = 0.1

_CRLF: Final = b"\r\n"


class RedisReplyError(Exception):
    """An error reply (``-ERR ...``, ``-WRONGTYPE ...``) to one command."""


class RedisConnectionError(Exception):
    """No connection to Redis, or it was lost before the reply came."""


class RedisSetupError(Exception):
    """Redis refused the ``AUTH`` or ``SELECT`` of the handshake, or its TLS
    certificate did not verify."""


class _TlsFailed(RedisConnectionError):
    """The TLS handshake failed (a certificate that does not verify...)."""


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


def reply_reader() -> hiredis.Reader:
    """A RESP2 reply parser (the C one of ``hiredis``): ``feed`` it bytes,
    ``gets`` the next complete reply or ``False``.

    Bulk and simple strings come back as ``str`` (bytes that are not UTF-8
    decoded with U+FFFD, as :class:`~junebug.stores.redis.RedisBackend` would
    decode them), integers as ``int``, nils as ``None``, arrays as ``list`` and
    error replies as :class:`RedisReplyError` values.  It keeps its own state
    between reads, so a reply cut into many reads is parsed once (the former
    pure-Python parser started an unfinished array again on every read:
    quadratic in the reply's size).  Garbage raises ``hiredis.ProtocolError``.
    """
    return hiredis.Reader(
        replyError=RedisReplyError, encoding="utf-8", errors="replace"
    )


class _RespProtocol(Protocol):
    """One connection: commands out, replies matched to them in order."""

    def __init__(self, clock: IReactorTime, timeout: float) -> None:
        self._clock = clock
        self._timeout = timeout
        self._reader = reply_reader()
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
        reader = self._reader
        reader.feed(data)
        waiting = self._waiting
        try:
            reply = reader.gets()
            while reply is not False:
                if not waiting:
                    self.drop(RedisConnectionError("a reply nobody asked for"))
                    return
                deferred, _ = waiting.popleft()
                deferred.callback(reply)
                if not self.open:  # a callback dropped the connection
                    return
                reply = reader.gets()
        except hiredis.ProtocolError as exc:
            self.drop(RedisConnectionError(f"unreadable reply: {exc}"))
            return
        if not waiting and self._timer is not None:
            if self._timer.active():
                self._timer.cancel()
            self._timer = None

    @override
    def connectionLost(self, reason: Failure | None = None) -> None:
        self.open = False
        self.ready = False
        why = reason.getErrorMessage() if reason is not None else "closed"
        if reason is not None and reason.check(SSL.Error):
            self._fail_all(_TlsFailed(f"TLS failed: {why}"))
        else:
            self._fail_all(RedisConnectionError(f"connection lost: {why}"))
        if self.on_lost is not None:
            self.on_lost(self)
        self.lost.callback(None)


def _auth_command(address: RedisAddress) -> tuple[str, ...]:
    """``AUTH password``, or ``AUTH username password`` for an ACL user (a
    user without a password sends an empty one: a ``nopass`` user takes any)."""
    if address.username is None:
        return ("AUTH", address.password or "")
    return ("AUTH", address.username, address.password or "")


class RespClient:
    """One pipelined connection to Redis, redialled when lost.

    ``reactor`` dials; ``clock`` times (they are the same outside tests).
    """

    def __init__(
        self,
        reactor: TimeTCPReactor,
        clock: IReactorTime,
        address: RedisAddress,
        *,
        timeout: float = 10.0,
        connect_timeout: float = 10.0,
    ) -> None:
        self._reactor = reactor
        self._clock = clock
        self._address = address
        # Built once: a TLS address reads its CA file here, not on each dial.
        self._endpoint = address.endpoint(reactor, connect_timeout)
        self._timeout = timeout
        self.protocol: _RespProtocol | None = None
        self._waiters: list[Deferred[_RespProtocol]] = []
        self._closed = False
        self._dialling = False
        self._redial: IDelayedCall | None = None
        self._redialling: Deferred[None] | None = None
        self._delay = FIRST_RECONNECT_DELAY

    @property
    def address(self) -> str:
        """The server, for messages (no credentials)."""
        return self._address.describe()

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
        protocol = await connectProtocol(
            self._endpoint, _RespProtocol(self._clock, self._timeout)
        )
        address = self._address
        try:
            if address.username is not None or address.password is not None:
                reply = await protocol.execute(_auth_command(address))
                if isinstance(reply, RedisReplyError):
                    raise RedisSetupError(f"authentication failed: {reply}")
            reply = await protocol.execute(("SELECT", address.db))
            if isinstance(reply, RedisReplyError):
                raise RedisSetupError(f"cannot select dbid {address.db}: {reply}")
        except _TlsFailed as exc:
            raise RedisSetupError(str(exc)) from exc
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
