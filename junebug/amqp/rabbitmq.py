"""The :class:`~junebug.amqp.broker.Broker` contract over RabbitMQ.

Built on our own AMQP 0-9-1 client (:mod:`junebug.amqp.client`) and kept alive
by :class:`~junebug.reconnecting.ReconnectingClient`, which reconnects with a
capped exponential backoff that only a connection fully set up resets.  Where
to connect (hosts, TLS, URL options) is :mod:`junebug.amqp.settings` and
:mod:`junebug.amqp.endpoints`; the TCP connection's protocol is
:mod:`junebug.amqp.connection`; the consumers are :mod:`junebug.amqp.consumer`.

One connection carries:

- a publish channel in confirm mode: :meth:`RabbitMQBroker.publish` awaits the
  broker's ``basic.ack`` for each message;
- a channel per consumer, with ``basic.qos(prefetch)``, while channel numbers
  last; past them consumers share channels
  (:mod:`junebug.amqp.consumer_channels`), so the number of consumers has no
  cap.

Every new connection declares the ``vumi`` exchange, opens the publish channel
and then sets up again every consumer that has not been stopped.  Until that
is done :meth:`RabbitMQBroker.is_connected` is false and publishing raises
:class:`~junebug.errors.BrokerError`; listeners registered with
:meth:`RabbitMQBroker.add_connection_listener` are told when the connection is
lost and when it is back.

While RabbitMQ blocks publishing (``connection.blocked``: a memory or disk
alarm), :meth:`RabbitMQBroker.publish` raises
:class:`~junebug.errors.BrokerBlocked` at once and writes nothing.  A publish
already written whose confirm does not come (it times out, or the connection
drops first) raises :class:`~junebug.errors.PublishOutcomeUnknown`: RabbitMQ
may still deliver it, so a client must not take it as "not sent".
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast

from twisted.application.internet import backoffPolicy
from twisted.internet.defer import Deferred, ensureDeferred, gatherResults
from twisted.internet.interfaces import IReactorTime, IStreamClientEndpoint
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.python.failure import Failure

from junebug.amqp.broker import (
    DEFAULT_PREFETCH,
    DELAY_TIERS,
    EXCHANGE,
    MessageHandler,
    delay_exchange,
    delay_tier,
)
from junebug.amqp.client import AmqpChannel, ConfirmTimeout, PublishRefused
from junebug.amqp.connection import AmqpConnection, AmqpConnectionFactory
from junebug.amqp.consumer import Live, RabbitMQConsumer
from junebug.amqp.consumer_channels import ConsumerChannels
from junebug.amqp.endpoints import amqp_endpoint
from junebug.amqp.frames import publish_properties
from junebug.amqp.settings import AmqpSettings, TlsSettings
from junebug.amqp.waiting import bounded, chain_to, describe, quiet
from junebug.errors import BrokerBlocked, BrokerError, PublishOutcomeUnknown
from junebug.messages import from_json, to_json
from junebug.reconnecting import ReconnectingClient

if TYPE_CHECKING:
    from junebug.messages import AnyMessage, Message
    from junebug.reactors import TimeTCPReactor

__all__ = [
    "AmqpSettings",
    "ConnectionListener",
    "RabbitMQBroker",
    "RabbitMQConsumer",
    "TlsSettings",
]

T = TypeVar("T")

#: Called with ``True`` when the broker is (again) ready, ``False`` when lost.
ConnectionListener = Callable[[bool], object]

CONTENT_TYPE = "application/json"
PERSISTENT = 2
_PROPERTIES = publish_properties(CONTENT_TYPE, PERSISTENT)


@functools.lru_cache(maxsize=16)
def _expiring_properties(ttl: float) -> bytes:
    """The properties of a persistent message that expires after ``ttl`` s."""
    milliseconds = max(0, round(ttl * 1000))
    return publish_properties(CONTENT_TYPE, PERSISTENT, str(milliseconds))


_log = Logger(namespace="junebug.amqp.rabbitmq")

#: How often :meth:`RabbitMQBroker.delete_queues` tries, and the pause before
#: the second try (seconds; the next pauses grow by as much).
DELETE_ATTEMPTS = 3
DELETE_PAUSE = 0.2


class RabbitMQBroker:
    """A :class:`~junebug.amqp.broker.Broker` connected to RabbitMQ.

    Nothing connects until :meth:`start` (or :meth:`when_connected`) is called.
    """

    def __init__(
        self,
        reactor: IReactorTime,
        settings: AmqpSettings,
        *,
        endpoint: IStreamClientEndpoint | None = None,
    ) -> None:
        """``reactor`` must also provide ``IReactorTCP`` unless ``endpoint``
        (any stream client endpoint) is given; without one the endpoint comes
        from ``settings`` (its hosts in order, TLS if ``settings.tls``)."""
        self.reactor = reactor
        self.settings = settings
        if endpoint is None:
            # Without an endpoint, the docstring's contract: it dials TCP too.
            endpoint = amqp_endpoint(cast("TimeTCPReactor", reactor), settings)
        base_policy = backoffPolicy(
            initialDelay=settings.retry_initial_delay,
            maxDelay=settings.retry_max_delay,
            jitter=lambda: random.random() * settings.retry_jitter,
        )
        self._service = ReconnectingClient(
            reactor,
            endpoint,
            AmqpConnectionFactory(reactor, settings, self),
            base_policy,
            on_connect_failed=self._connect_failed,
        )
        self._protocol: AmqpConnection | None = None
        self._live: Live | None = None
        self._consumers: dict[RabbitMQConsumer, None] = {}
        self._listeners: list[ConnectionListener] = []
        self._waiters: list[Deferred[None]] = []
        self._last_error: str | None = None
        self._started = False
        self._closing = False
        self._close_done: Deferred[None] | None = None

    def __repr__(self) -> str:
        state = "connected" if self.is_connected() else "disconnected"
        return f"<RabbitMQBroker {self.settings.describe()} {state}>"

    # -- lifecycle -------------------------------------------------------------

    def start(self) -> None:
        """Start connecting (and reconnecting whenever the connection drops)."""
        if self._closing:
            raise BrokerError("the broker has been closed")
        if not self._started:
            self._started = True
            self._service.start()

    async def when_connected(self, timeout: float | None = None) -> None:
        """Start if needed and wait until connected; :class:`BrokerError` if
        that takes longer than ``timeout`` seconds or the broker is closed."""
        self.start()
        if self._live is not None:
            return
        waiter: Deferred[None] = Deferred()
        self._waiters.append(waiter)
        if timeout is None:
            await waiter
            return
        try:
            await bounded(self.reactor, waiter, timeout, "connecting")
        except BrokerError:
            if waiter in self._waiters:
                self._waiters.remove(waiter)
            if self.is_connected():
                return
            reason = f": {self._last_error}" if self._last_error else ""
            raise BrokerError(
                f"could not connect to RabbitMQ at {self.settings.describe()}"
                f" within {timeout:g}s{reason}"
            ) from None

    def is_connected(self) -> bool:
        return self._live is not None

    def blocked_reason(self) -> str | None:
        """RabbitMQ's reason while it blocks publishing, else ``None``."""
        live = self._live
        if live is None or not live.protocol.amqp.blocked:
            return None
        return live.protocol.amqp.blocked_reason or "blocked"

    def add_connection_listener(
        self, listener: ConnectionListener
    ) -> Callable[[], None]:
        """Call ``listener(True)`` whenever the connection is (re)established and
        ``listener(False)`` whenever it is lost.  Returns a function removing it."""
        self._listeners.append(listener)

        def remove() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return remove

    def drop_connection(self) -> None:
        """Abort the current TCP connection (tests, operations); it reconnects."""
        if self._protocol is not None:
            self._protocol.abort()

    async def close(self) -> None:
        """Stop every consumer, close the connection and stop reconnecting."""
        if self._close_done is None:
            self._close_done = ensureDeferred(self._close())
        done: Deferred[None] = Deferred()
        self._close_done.addBoth(chain_to, done)
        await done

    async def _close(self) -> None:
        self._closing = True
        consumers = list(self._consumers)
        if consumers:
            await quiet(gatherResults([ensureDeferred(c.stop()) for c in consumers]))
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.errback(BrokerError("the broker has been closed"))
        protocol = self._protocol
        live = self._live
        if protocol is not None and not protocol.is_lost:
            if live is not None:
                try:
                    closed = protocol.amqp.close()
                    if closed is not None:
                        await self._bounded(closed, "connection close")
                except Exception as e:
                    _log.debug("closing the connection: {error}", error=describe(e))
            protocol.abort()
            await protocol.lost
        if self._started:
            await self._service.stop()
        if live is not None and self._live is live:
            self._live = None
            self._notify(False)

    # -- connection callbacks ------------------------------------------------

    def _connect_failed(self, failure: Failure) -> None:
        self._last_error = describe(failure.value)

    def connection_made(self, protocol: AmqpConnection) -> None:
        """TCP is up: run the AMQP handshake and set up (the connection calls it)."""
        self._protocol = protocol
        ensureDeferred(self._setup(protocol)).addErrback(
            lambda failure: _log.failure("RabbitMQ set-up failed", failure)
        )

    async def _setup(self, protocol: AmqpConnection) -> None:
        timer = self.reactor.callLater(self.settings.connect_timeout, protocol.abort)
        try:
            await protocol.amqp.ready
            channel = await protocol.amqp.channel()
            await channel.exchange_declare(
                exchange=EXCHANGE, exchange_type="direct", durable=True
            )
            for tier in DELAY_TIERS:
                name = delay_exchange(tier)
                await channel.exchange_declare(
                    exchange=name, exchange_type="fanout", durable=True
                )
                await channel.queue_declare(
                    queue=name,
                    durable=True,
                    arguments={
                        "x-message-ttl": int(tier * 1000),
                        "x-dead-letter-exchange": EXCHANGE,
                    },
                )
                await channel.queue_bind(queue=name, exchange=name, routing_key="")
            await channel.confirm_select()
            channel.confirm_timeout = self.settings.operation_timeout
        except Exception as e:
            # Counted and logged by connection_ended once the socket is gone.
            self._last_error = protocol.close_reason or describe(e)
            protocol.abort()
            return
        finally:
            if timer.active():
                timer.cancel()
        if protocol.is_lost:
            return
        if self._closing:
            protocol.abort()
            return
        amqp = protocol.amqp
        live = Live(
            protocol=protocol,
            publish_channel=channel,
            channels=ConsumerChannels(
                amqp, lambda: self._bounded(amqp.channel(), "channel open")
            ),
        )
        protocol.was_live = True
        channel.on_closed.addBoth(self._publish_channel_closed, live)
        self._service.ready()
        self._last_error = None
        self._live = live
        _log.info("Connected to RabbitMQ at {where}", where=self.settings.describe())
        for consumer in list(self._consumers):
            consumer.attach_soon(live)
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.callback(None)
        self._notify(True)

    def _publish_channel_closed(self, reason: object, live: Live) -> None:
        if live.lost or self._closing:
            return
        _log.error(
            "RabbitMQ closed the publish channel ({reason}); reconnecting",
            reason=reason,
        )
        live.protocol.abort()

    def connection_lost(self, protocol: AmqpConnection, reason: Failure) -> None:
        """The connection dropped: fail what used it (the connection calls it)."""
        if self._protocol is protocol:
            self._protocol = None
        live = self._live
        if live is not None and live.protocol is protocol:
            self._live = None
            # Before any listener runs: the deliveries died with the socket.
            for consumer in self._consumers:
                consumer.connection_lost(live)
            if not self._closing:
                self._last_error = protocol.close_reason or describe(reason.value)
                _log.warn(
                    "Lost the RabbitMQ connection to {where}: {error}",
                    where=self.settings.describe(),
                    error=self._last_error,
                )
            self._notify(False)

    def connection_ended(self, protocol: AmqpConnection) -> None:
        """The connection is over (the connection calls it)."""
        if protocol.was_live or self._closing:
            return
        # Connected but never set up (refused login, unknown vhost, timeout):
        # a failure for the backoff, as the connection was never ready.
        _log.warn(
            "Could not set up a RabbitMQ connection to {where}: {error}",
            where=self.settings.describe(),
            error=self._last_error or "connection lost",
        )

    def _notify(self, connected: bool) -> None:
        for listener in list(self._listeners):
            try:
                listener(connected)
            except Exception:
                _log.failure("AMQP connection listener failed")

    # -- operations ------------------------------------------------------------

    def _require_live(self) -> Live:
        live = self._live
        if live is None:
            if self._closing:
                raise BrokerError("the broker has been closed")
            reason = f" ({self._last_error})" if self._last_error else ""
            raise BrokerError(
                f"not connected to RabbitMQ at {self.settings.describe()}{reason}"
            )
        return live

    def _bounded(self, d: Deferred[T], what: str) -> Deferred[T]:
        return bounded(self.reactor, d, self.settings.operation_timeout, what)

    async def publish(
        self, routing_key: str, message: AnyMessage, ttl: float | None = None
    ) -> None:
        """Publish persistently and await the confirm (:class:`BrokerError`
        when disconnected, nacked or the connection drops first); with
        ``ttl``, RabbitMQ drops the message if it still waits ``ttl`` seconds
        later (the per-message ``expiration``)."""
        properties = _PROPERTIES if ttl is None else _expiring_properties(ttl)
        await self._publish_body(routing_key, to_json(message), properties=properties)

    async def publish_later(
        self, routing_key: str, message: AnyMessage, delay: float
    ) -> None:
        """Publish so that ``message`` reaches ``routing_key`` after ``delay``.

        The message waits in the durable queue of the smallest delay tier of
        at least ``delay`` seconds and is dead-lettered to ``vumi`` with its
        routing key when its time is up, so a delayed message survives
        restarts of both RabbitMQ and Junebug.
        """
        await self._publish_body(
            routing_key, to_json(message), exchange=delay_exchange(delay_tier(delay))
        )

    async def drain(
        self, queue: str, handler: MessageHandler, limit: int = 1000
    ) -> int:
        """Hand up to ``limit`` waiting messages of ``queue`` to ``handler``.

        Each message is acknowledged after its handler returns; if the handler
        raises, the message goes back to the queue and the error propagates.
        """
        count = 0

        async def take(channel: AmqpChannel) -> None:
            nonlocal count
            while count < limit:
                got = await self._bounded(channel.basic_get(queue), "basic.get")
                if got is None:
                    return
                tag = got.delivery_tag
                try:
                    await handler(from_json(got.body))
                except BaseException:
                    channel.basic_nack(tag, requeue=True)
                    raise
                channel.basic_ack(tag)
                count += 1

        live = self._require_live()

        async def drain_on_a_channel() -> None:
            opening = live.protocol.amqp.channel()
            channel = await self._bounded(opening, "channel open")
            try:
                await take(channel)
            finally:
                await self._close_channel(channel)

        await live.channels.short_lived(drain_on_a_channel)
        return count

    async def peek(self, queue: str, limit: int = 1000) -> list[Message]:
        """Copies of up to ``limit`` waiting messages of ``queue``, oldest first.

        The messages are fetched with ``basic.get`` and never acknowledged:
        closing the channel (or losing it, if the caller is cancelled) puts
        them back, and one channel is never given the same message twice.
        """
        seen: list[Message] = []
        live = self._require_live()

        async def peek_on_a_channel() -> None:
            opening = live.protocol.amqp.channel()
            channel = await self._bounded(opening, "channel open")
            try:
                while len(seen) < limit:
                    got = await self._bounded(channel.basic_get(queue), "basic.get")
                    if got is None:
                        break
                    seen.append(from_json(got.body))
            finally:
                await self._close_channel(channel)

        await live.channels.short_lived(peek_on_a_channel)
        return seen

    async def _publish_body(
        self,
        routing_key: str,
        body: bytes,
        exchange: str = EXCHANGE,
        properties: bytes = _PROPERTIES,
    ) -> None:
        live = self._require_live()
        amqp = live.protocol.amqp
        if amqp.blocked:
            raise BrokerBlocked(
                f"RabbitMQ blocks publishing ({amqp.blocked_reason or 'an alarm'});"
                f" the message to {routing_key} was not sent"
            )
        # The channel fails it after operation_timeout (one timer for all).
        confirmed = live.publish_channel.publish(
            exchange, routing_key, body, properties
        )
        # Failed at once: the channel was closed and nothing was written.
        written = not confirmed.called
        try:
            await confirmed
        except ConfirmTimeout as e:
            raise PublishOutcomeUnknown(
                f"confirm of a message to {routing_key} timed out after "
                f"{self.settings.operation_timeout:g}s; RabbitMQ may still take it"
            ) from e
        except PublishRefused as e:
            raise BrokerError(f"RabbitMQ refused a message to {routing_key}") from e
        except Exception as e:
            if written:
                raise PublishOutcomeUnknown(
                    f"message to {routing_key} sent but not confirmed: {describe(e)}"
                ) from e
            raise BrokerError(
                f"message to {routing_key} not sent: {describe(e)}"
            ) from e

    async def _declare_on(
        self, channel: AmqpChannel, queue: str, expires: float | None = None
    ) -> None:
        arguments = {} if expires is None else {"x-expires": round(expires * 1000)}
        await self._bounded(
            channel.queue_declare(queue=queue, durable=True, arguments=arguments),
            "queue.declare",
        )
        await self._bounded(
            channel.queue_bind(queue=queue, exchange=EXCHANGE, routing_key=queue),
            "queue.bind",
        )

    async def _close_channel(self, channel: AmqpChannel) -> None:
        if not channel.is_open:
            return
        await quiet(self._bounded(channel.close(), "channel close"))

    async def _with_channel(
        self, what: str, use: Callable[[AmqpChannel], Deferred[Any]]
    ) -> None:
        """Run ``use`` on a short-lived channel, so a channel error (e.g. a
        queue declared with other arguments) cannot hurt the others."""
        live = self._require_live()

        async def on_a_channel() -> None:
            try:
                opening = live.protocol.amqp.channel()
                channel = await self._bounded(opening, "channel open")
            except BrokerError:
                raise
            except Exception as e:
                raise BrokerError(f"could not {what}: {describe(e)}") from e
            try:
                await use(channel)
            except BrokerError:
                raise
            except Exception as e:
                raise BrokerError(f"could not {what}: {describe(e)}") from e
            finally:
                await self._close_channel(channel)

        await live.channels.short_lived(on_a_channel)

    async def declare_queue(self, queue: str, expires: float | None = None) -> None:
        """Declare the durable queue ``queue`` bound to ``vumi`` by its name
        (with ``x-expires`` if ``expires`` is given)."""
        await self._with_channel(
            f"declare {queue}",
            lambda ch: ensureDeferred(self._declare_on(ch, queue, expires)),
        )

    async def declare_queues(self, queues: list[str]) -> None:
        """Declare and bind every queue on one short-lived channel (four
        round trips fewer per queue than :meth:`declare_queue`); if that
        channel fails (a queue declared with other arguments), the rest are
        declared one by one, so the error names its queue."""
        done: list[str] = []

        async def declare_all(channel: AmqpChannel) -> None:
            for queue in queues:
                await self._declare_on(channel, queue)
                done.append(queue)

        try:
            await self._with_channel(
                f"declare {len(queues)} queues",
                lambda ch: ensureDeferred(declare_all(ch)),
            )
        except BrokerError:
            if not self.is_connected():
                raise
            for queue in queues[len(done) :]:
                await self.declare_queue(queue)

    async def queue_depths(self, queues: list[str]) -> dict[str, int]:
        """Messages ready in each existing queue of ``queues``: passive
        declares on one short-lived channel.  A missing queue closes that
        channel (404), so the queues after it are asked on a new one."""
        depths: dict[str, int] = {}
        remaining = list(queues)
        while remaining:

            async def ask(channel: AmqpChannel) -> None:
                while remaining:
                    queue = remaining[0]
                    ok = await self._bounded(
                        channel.queue_declare(queue=queue, passive=True),
                        "queue.declare",
                    )
                    depths[queue] = int(ok["message_count"])
                    remaining.pop(0)

            try:
                await self._with_channel(
                    "count messages", lambda ch: ensureDeferred(ask(ch))
                )
            except BrokerError:
                if not self.is_connected():
                    raise
                remaining.pop(0)  # absent: passive declare refused it
        return depths

    async def delete_queue(self, queue: str) -> None:
        """Delete ``queue`` and its messages (tests and clean-up).

        Stop its consumers first: RabbitMQ cancels them, and a consumer that
        was not stopped attaches again, declaring the queue anew.
        """
        await self._with_channel(
            f"delete {queue}",
            lambda ch: self._bounded(ch.queue_delete(queue=queue), "queue.delete"),
        )

    async def delete_queues(self, queues: list[str]) -> None:
        """Delete every queue on one short-lived channel (RabbitMQ answers
        ``queue.delete-ok`` for an absent queue too).

        A queue whose process is going away or coming back at that moment
        (another process deleting it too, or its consumers there attaching
        again) can make RabbitMQ refuse with 404 "home node ... is down or
        inaccessible", closing the channel: the queues not deleted yet are
        tried again on a new channel, :data:`DELETE_ATTEMPTS` times in all,
        a moment apart.
        """
        remaining = list(queues)

        async def delete_all(channel: AmqpChannel) -> None:
            while remaining:
                queue = remaining[0]
                await self._bounded(channel.queue_delete(queue=queue), "queue.delete")
                remaining.pop(0)

        for attempt in range(1, DELETE_ATTEMPTS + 1):
            try:
                await self._with_channel(
                    f"delete {len(remaining)} queues",
                    lambda ch: ensureDeferred(delete_all(ch)),
                )
                return
            except BrokerError:
                if attempt == DELETE_ATTEMPTS or not self.is_connected():
                    raise
            await deferLater(self.reactor, DELETE_PAUSE * attempt, lambda: None)

    async def consume(
        self,
        queue: str,
        handler: MessageHandler,
        prefetch: int = DEFAULT_PREFETCH,
        expires: float | None = None,
    ) -> RabbitMQConsumer:
        """Start consuming ``queue``; :class:`BrokerError` when disconnected.

        The consumer is set up again on every later connection until stopped.
        """
        if prefetch < 1:
            raise ValueError("prefetch must be at least 1")
        live = self._require_live()
        consumer = RabbitMQConsumer(self, queue, handler, prefetch, expires)
        try:
            await consumer.attach(live)
        except BrokerError:
            raise
        except Exception as e:
            raise BrokerError(f"could not consume {queue}: {describe(e)}") from e
        if self._closing:
            await consumer.stop()
            raise BrokerError("the broker has been closed")
        self._consumers[consumer] = None
        current = self._live
        if current is not live and current is not None:
            # The connection dropped while attaching: follow the new one.
            consumer.attach_soon(current)
        return consumer
