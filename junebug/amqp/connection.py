"""One TCP connection to RabbitMQ, as the Twisted protocol that carries it.

:class:`AmqpConnection` hands the bytes to our AMQP client
(:class:`~junebug.amqp.client.AmqpClient`) and tells its owner, a
:class:`ConnectionEvents` (the :class:`~junebug.amqp.rabbitmq.RabbitMQBroker`),
when the connection is made, when it is lost and, after the client has been
told too, when it has ended.  The owner decides what each of those means
(set-up, reconnecting, failing waiters); this module holds no policy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, cast

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IAddress, IReactorTime, ITCPTransport
from twisted.internet.protocol import Factory, connectionDone
from twisted.internet.protocol import Protocol as TwistedProtocol
from twisted.python.failure import Failure
from typing_extensions import override

from junebug.amqp.client import AmqpClient

if TYPE_CHECKING:
    from junebug.amqp.settings import AmqpSettings

__all__ = ["AmqpConnection", "AmqpConnectionFactory", "ConnectionEvents"]


class ConnectionEvents(Protocol):
    """What a connection tells its owner."""

    def connection_made(self, connection: AmqpConnection) -> None:
        """TCP is up; the AMQP handshake is the owner's to run."""

    def connection_lost(self, connection: AmqpConnection, reason: Failure) -> None:
        """TCP is gone (before the client's own waiters are failed)."""

    def connection_ended(self, connection: AmqpConnection) -> None:
        """Everything about the connection has been told its end."""


class AmqpConnection(TwistedProtocol):
    """One TCP connection: forwards bytes to the AMQP client and reports its
    lifecycle to its owner."""

    def __init__(
        self, reactor: IReactorTime, settings: AmqpSettings, events: ConnectionEvents
    ) -> None:
        self._events = events
        self.amqp = AmqpClient(
            reactor,
            vhost=settings.vhost,
            username=settings.username,
            password=settings.password,
            heartbeat=settings.heartbeat,
            channel_max=settings.channel_max,
            frame_max=settings.frame_max,
        )
        #: Fires when the TCP connection is gone.
        self.lost: Deferred[None] = Deferred()
        self.is_lost = False
        #: The connection was fully set up at some point (the owner sets it).
        self.was_live = False

    @property
    def close_reason(self) -> str | None:
        """The broker's reason if it closed the connection."""
        return self.amqp.close_reason

    @override
    def makeConnection(self, transport: Any) -> None:
        self.amqp.makeConnection(transport)
        super().makeConnection(transport)

    @override
    def connectionMade(self) -> None:
        self._events.connection_made(self)

    @override
    def dataReceived(self, data: bytes) -> None:
        self.amqp.dataReceived(data)

    @override
    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.is_lost = True
        try:
            self._events.connection_lost(self, reason)
            self.amqp.connectionLost(reason)
        finally:
            self._events.connection_ended(self)
            self.lost.callback(None)

    def abort(self) -> None:
        if not self.is_lost and self.transport is not None:
            cast(ITCPTransport, self.transport).abortConnection()


class AmqpConnectionFactory(Factory):
    """Builds an :class:`AmqpConnection` per dial, all told to one owner."""

    noisy = False

    def __init__(
        self, reactor: IReactorTime, settings: AmqpSettings, events: ConnectionEvents
    ) -> None:
        self._reactor = reactor
        self._settings = settings
        self._events = events

    @override
    def buildProtocol(self, addr: IAddress | None) -> AmqpConnection:
        return AmqpConnection(self._reactor, self._settings, self._events)
