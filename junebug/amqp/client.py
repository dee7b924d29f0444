"""A small AMQP 0-9-1 client protocol for Twisted, written for RabbitMQ.

:class:`AmqpClient` is the connection (handshake with PLAIN login, tuning,
heartbeats, ``connection.blocked``, orderly close); its channels are
:class:`~junebug.amqp.channel.AmqpChannel`.  Everything is driven by the
reactor passed in; nothing blocks.

Why our own client rather than pika: a persistent publish with its confirm
and a delivery with its ack were each about 200 µs of CPU through pika's
Twisted adapter, several times the cost of the frames themselves; every
message crosses RabbitMQ up to three times (docs/performance.md).
"""

from __future__ import annotations

from typing import Any, cast

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime, ITCPTransport
from twisted.internet.protocol import Protocol, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from typing_extensions import override

from junebug.amqp import frames as f
from junebug.amqp.channel import AmqpChannel, Delivery, relay
from junebug.amqp.frames import FrameError, FrameReader, Method
from junebug.errors import (
    AmqpError,
    ChannelClosedError,
    ConfirmTimeout,
    ConnectionClosedError,
    PublishRefused,
)

__all__ = [
    "AmqpChannel",
    "AmqpClient",
    "AmqpError",
    "ChannelClosedError",
    "ConfirmTimeout",
    "ConnectionClosedError",
    "Delivery",
    "PublishRefused",
]

_log = Logger(namespace="junebug.amqp.client")

#: Channels we open at most, whatever the broker allows.
MAX_CHANNELS = 2047
#: Largest frame we accept or send (RabbitMQ's default).
FRAME_MAX = 131072

_CAPABILITIES = {
    "publisher_confirms": True,
    "consumer_cancel_notify": True,
    "basic.nack": True,
    "connection.blocked": True,
    "authentication_failure_close": True,
    "exchange_exchange_bindings": True,
}


class AmqpClient(Protocol):
    """One AMQP 0-9-1 connection (PLAIN login) to RabbitMQ.

    :attr:`ready` fires with the client once ``connection.open-ok`` arrives
    and fails if the handshake does not finish (:attr:`close_reason` then has
    the broker's reason, e.g. ``403 ACCESS_REFUSED ...``).
    """

    def __init__(
        self,
        reactor: IReactorTime,
        *,
        vhost: str = "/",
        username: str = "guest",
        password: str = "guest",  # noqa: S107 - RabbitMQ's default account
        heartbeat: int | None = None,
        channel_max: int | None = None,
        frame_max: int | None = None,
        connection_name: str = "junebug",
    ) -> None:
        self.reactor = reactor
        self.vhost = vhost
        self._username = username
        self._password = password
        self._heartbeat_wanted = heartbeat
        self._channel_max_wanted = min(channel_max or MAX_CHANNELS, MAX_CHANNELS)
        # Below 4096 (the spec's minimum) a broker would refuse the tune-ok.
        self._frame_max_wanted = max(min(frame_max or FRAME_MAX, FRAME_MAX), 4096)
        #: RabbitMQ's reason for the current ``connection.blocked``.
        self.blocked_reason = ""
        self._connection_name = connection_name
        self.ready: Deferred[AmqpClient] = Deferred()
        #: Fires (never fails) when the TCP connection is gone.
        self.lost: Deferred[None] = Deferred()
        self.close_reason: str | None = None
        self.connected = False
        self.opened = False
        self.blocked = False
        self.frame_max = FRAME_MAX
        self.channel_max = self._channel_max_wanted
        self.heartbeat = 0
        self._reader = FrameReader(FRAME_MAX)
        self._channels: dict[int, AmqpChannel] = {}
        self._next_channel = 0
        self._closing: Deferred[None] | None = None
        self._heartbeat_call: IDelayedCall | None = None
        self._sent = False
        self._received = False
        self._missed = 0
        self._started = False

    # -- the transport -----------------------------------------------------------

    @override
    def connectionMade(self) -> None:
        self.connected = True
        set_no_delay = getattr(self.transport, "setTcpNoDelay", None)
        if set_no_delay is not None:
            # Small frames (acks, publishes) must not wait for Nagle and the
            # broker's delayed ACK (up to 40 ms each).
            set_no_delay(True)
        self._write(f.PROTOCOL_HEADER)

    def _write(self, data: bytes) -> None:
        if self.connected and self.transport is not None:
            self._sent = True
            self.transport.write(data)

    @override
    def dataReceived(self, data: bytes) -> None:
        self._received = True
        if not self._started:
            self._started = True
            if data.startswith(b"AMQP"):
                self._fail_connection(
                    "the server does not speak AMQP 0-9-1 (it sent its "
                    f"protocol header {data[:8]!r})"
                )
                return
        try:
            for kind, number, payload in self._reader.feed(data):
                if kind == f.FRAME_METHOD:
                    m = f.decode_method(payload)
                    if number == 0:
                        self._connection_method(m)
                    else:
                        self._channel(number)._method(m)
                elif kind == f.FRAME_BODY:
                    self._channel(number)._body(payload)
                elif kind == f.FRAME_HEADER:
                    self._channel(number)._header(payload)
                elif kind != f.FRAME_HEARTBEAT:
                    raise FrameError(f"unknown frame type {kind}")
                if not self.connected:
                    return
        except FrameError as e:
            _log.error("AMQP protocol error from the broker: {error}", error=e)
            self._write(
                f.method(0, f.CONNECTION_CLOSE, reply_code=501, reply_text=str(e)[:200])
            )
            self._fail_connection(f"protocol error: {e}")

    def _channel(self, number: int) -> AmqpChannel:
        channel = self._channels.get(number)
        if channel is None:
            raise FrameError(f"a frame for channel {number}, which is not open")
        return channel

    def _fail_connection(self, reason: str) -> None:
        if self.close_reason is None:
            self.close_reason = reason
        if self.transport is not None:
            self.transport.loseConnection()

    @override
    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.connected = False
        self.opened = False
        self.blocked = False  # a new connection starts unblocked
        if self._heartbeat_call is not None and self._heartbeat_call.active():
            self._heartbeat_call.cancel()
        self._heartbeat_call = None
        text = self.close_reason or reason.getErrorMessage()
        error = ConnectionClosedError(f"connection lost: {text}")
        for channel in list(self._channels.values()):
            channel._closed(error)
        if not self.ready.called:
            self.ready.errback(
                ConnectionClosedError(
                    self.close_reason or "connection closed during the handshake"
                )
            )
        closing, self._closing = self._closing, None
        if closing is not None and not closing.called:
            closing.callback(None)
        self.lost.callback(None)

    def abort(self) -> None:
        if self.connected and self.transport is not None:
            transport: Any = self.transport
            if hasattr(transport, "abortConnection"):
                cast(ITCPTransport, transport).abortConnection()
            else:
                transport.loseConnection()

    # -- the connection's own methods ---------------------------------------------

    def _connection_method(self, m: Method) -> None:
        ids = m.ids
        if ids == f.CONNECTION_START:
            self._start(m)
        elif ids == f.CONNECTION_TUNE:
            self._tune(m)
        elif ids == f.CONNECTION_OPEN_OK:
            self.opened = True
            self._schedule_heartbeat()
            self.ready.callback(self)
        elif ids == f.CONNECTION_CLOSE:
            self.close_reason = f"{m.args['reply_code']} {m.args['reply_text']}"
            self._write(f.method(0, f.CONNECTION_CLOSE_OK))
            self._fail_connection(self.close_reason)
        elif ids == f.CONNECTION_CLOSE_OK:
            self._fail_connection("closed by the client")
        elif ids == f.CONNECTION_BLOCKED:
            self.blocked = True
            self.blocked_reason = str(m.args["reason"])
            _log.warn("RabbitMQ blocked publishing: {reason}", reason=m.args["reason"])
        elif ids == f.CONNECTION_UNBLOCKED:
            self.blocked = False
            _log.info("RabbitMQ unblocked publishing")
        elif ids == f.CONNECTION_SECURE:
            raise FrameError("connection.secure: only PLAIN login is supported")
        else:
            raise FrameError(f"unexpected {m.name} on channel 0")

    def _start(self, m: Method) -> None:
        mechanisms = m.args["mechanisms"].split()
        if b"PLAIN" not in mechanisms:
            self._fail_connection(
                f"the broker does not offer PLAIN login (offers {mechanisms!r})"
            )
            return
        response = b"\x00" + self._username.encode() + b"\x00" + self._password.encode()
        properties = {
            "product": "junebug",
            "platform": "Python/Twisted",
            "connection_name": self._connection_name,
            "capabilities": _CAPABILITIES,
        }
        self._write(
            f.method(
                0,
                f.CONNECTION_START_OK,
                client_properties=properties,
                mechanism="PLAIN",
                response=response,
                locale="en_US",
            )
        )

    def _tune(self, m: Method) -> None:
        args = m.args
        wanted_channels = self._channel_max_wanted
        self.channel_max = min(args["channel_max"] or wanted_channels, wanted_channels)
        wanted_frame = self._frame_max_wanted
        self.frame_max = min(args["frame_max"] or wanted_frame, wanted_frame)
        self._reader.frame_max = self.frame_max
        beat = self._heartbeat_wanted
        self.heartbeat = args["heartbeat"] if beat is None else beat
        self._write(
            f.method(
                0,
                f.CONNECTION_TUNE_OK,
                channel_max=self.channel_max,
                frame_max=self.frame_max,
                heartbeat=self.heartbeat,
            )
            + f.method(0, f.CONNECTION_OPEN, virtual_host=self.vhost)
        )

    # -- heartbeats -------------------------------------------------------------------

    def _schedule_heartbeat(self) -> None:
        if self.heartbeat > 0:
            self._heartbeat_call = self.reactor.callLater(
                self.heartbeat / 2, self._beat
            )

    def _beat(self) -> None:
        self._heartbeat_call = None
        if not self.connected:
            return
        if self._received:
            self._received = False
            self._missed = 0
        else:
            self._missed += 1
            if self._missed >= 4:  # two heartbeat intervals of silence
                self._fail_connection("missed heartbeats from the broker")
                self.abort()
                return
        if not self._sent:
            self._write(f.HEARTBEAT_FRAME)
        self._sent = False
        self._schedule_heartbeat()

    # -- channels -------------------------------------------------------------------

    def channel(self) -> Deferred[AmqpChannel]:
        """Open a new channel."""
        if not self.opened or self._closing is not None:
            return fail(ConnectionClosedError("the connection is not open"))
        number = self._free_channel_number()
        if number is None:
            return fail(AmqpError(f"all {self.channel_max} channels are in use"))
        channel = AmqpChannel(self, number)
        self._channels[number] = channel
        channel.is_open = True  # so the open-ok is matched like any reply
        opened: Deferred[Any] = channel._call(
            f.method(number, f.CHANNEL_OPEN), f.CHANNEL_OPEN_OK
        )
        return opened.addCallback(lambda _: channel)

    def _free_channel_number(self) -> int | None:
        for _ in range(self.channel_max):
            self._next_channel = self._next_channel % self.channel_max + 1
            if self._next_channel not in self._channels:
                return self._next_channel
        return None

    @property
    def open_channels(self) -> int:
        """How many channel numbers are taken (opening, open or closing)."""
        return len(self._channels)

    def _forget(self, channel: AmqpChannel) -> None:
        if self._channels.get(channel.number) is channel:
            del self._channels[channel.number]

    def close(self) -> Deferred[None]:
        """Close the connection politely; fires once the socket is closed."""
        if not self.connected:
            return succeed(None)
        if self._closing is None:
            self._closing = Deferred()
            if self.opened:
                self._write(
                    f.method(0, f.CONNECTION_CLOSE, reply_code=200, reply_text="OK")
                )
            else:
                self.abort()
        done: Deferred[None] = Deferred()
        self._closing.addBoth(relay, done)
        return done
