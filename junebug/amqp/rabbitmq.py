"""The :class:`~junebug.amqp.broker.Broker` contract over RabbitMQ.

Built on our own AMQP 0-9-1 client (:mod:`junebug.amqp.client`) and kept alive
by :class:`~junebug.reconnecting.ReconnectingClient`, which reconnects with a
capped exponential backoff that only a connection fully set up resets.

One connection carries:

- a publish channel in confirm mode: :meth:`RabbitMQBroker.publish` awaits the
  broker's ``basic.ack`` for each message;
- one channel per consumer, with ``basic.qos(prefetch)``.

Every new connection declares the ``vumi`` exchange, opens the publish channel
and then sets up again every consumer that has not been stopped.  Until that
is done :meth:`RabbitMQBroker.is_connected` is false and publishing raises
:class:`~junebug.errors.BrokerError`; listeners registered with
:meth:`RabbitMQBroker.add_connection_listener` are told when the connection is
lost and when it is back.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast
from urllib.parse import unquote, urlsplit

import attrs
from twisted.application.internet import backoffPolicy
from twisted.internet.defer import Deferred, ensureDeferred, gatherResults
from twisted.internet.endpoints import HostnameEndpoint
from twisted.internet.interfaces import (
    IAddress,
    IDelayedCall,
    IReactorTime,
    IStreamClientEndpoint,
    ITCPTransport,
)
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from typing_extensions import override

from junebug.amqp import topology
from junebug.amqp.broker import (
    DEFAULT_PREFETCH,
    DELAY_TIERS,
    EXCHANGE,
    MessageHandler,
    delay_exchange,
    delay_tier,
)
from junebug.amqp.client import (
    AmqpChannel,
    AmqpClient,
    ConfirmTimeout,
    Delivery,
    PublishRefused,
)
from junebug.amqp.frames import publish_properties
from junebug.errors import RETRY_LATER, BrokerError
from junebug.messages import from_json, to_json
from junebug.reconnecting import ReconnectingClient

if TYPE_CHECKING:
    from junebug.messages import Message

__all__ = ["AmqpSettings", "ConnectionListener", "RabbitMQBroker", "RabbitMQConsumer"]

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


@attrs.frozen
class AmqpSettings:
    """Where and how to reach RabbitMQ.

    ``heartbeat`` is in seconds; ``None`` accepts the broker's proposal and
    ``0`` turns heartbeats off.  ``connect_timeout`` bounds the TCP connect and
    then the AMQP handshake and set-up; ``operation_timeout`` bounds every
    later round trip (a publish confirm, a declare, opening a channel), after
    which the operation fails with :class:`BrokerError`.  ``retry_*`` shape
    the reconnect backoff:
    ``retry_initial_delay * 1.5**n`` capped at ``retry_max_delay``, plus up to
    ``retry_jitter`` seconds of random noise.
    """

    host: str = "127.0.0.1"
    port: int = 5672
    vhost: str = "/"
    username: str = "guest"
    password: str = attrs.field(default="guest", repr=False)
    heartbeat: int | None = None
    connect_timeout: float = 30.0
    operation_timeout: float = 30.0
    retry_initial_delay: float = 1.0
    retry_max_delay: float = 30.0
    retry_jitter: float = 1.0

    @classmethod
    def from_url(cls, url: str, **overrides: Any) -> AmqpSettings:
        """Parse ``amqp://user:password@host:port/vhost``.

        The vhost is URL-quoted (``%2F`` is ``/``); an empty path means ``/``.
        ``overrides`` set the remaining fields.
        """
        parts = urlsplit(url)
        if parts.scheme != "amqp":
            raise ValueError(f"not an amqp:// URL: {url!r}")
        path = parts.path[1:] if parts.path.startswith("/") else parts.path
        fields: dict[str, Any] = {
            "host": parts.hostname or "127.0.0.1",
            "port": parts.port or 5672,
            "vhost": unquote(path) if path else "/",
        }
        if parts.username is not None:
            fields["username"] = unquote(parts.username)
        if parts.password is not None:
            fields["password"] = unquote(parts.password)
        fields.update(overrides)
        return cls(**fields)

    def describe(self) -> str:
        """``host:port/vhost`` for messages and logs (never the password)."""
        return f"{self.host}:{self.port}{'' if self.vhost == '/' else '/'}{self.vhost}"


def _bounded(
    reactor: IReactorTime, d: Deferred[T], seconds: float, what: str
) -> Deferred[T]:
    """Fire like ``d`` but fail with :class:`BrokerError` after ``seconds``.

    ``d`` itself is left alone (pika's Deferreds cannot be cancelled); whatever
    it fires with later is swallowed.
    """
    result: Deferred[T] = Deferred()

    def expire() -> None:
        if not result.called:
            result.errback(BrokerError(f"{what} timed out after {seconds:g}s"))

    call = reactor.callLater(seconds, expire)

    def ok(value: T) -> None:
        if call.active():
            call.cancel()
        if not result.called:
            result.callback(value)

    def err(failure: Failure) -> None:
        if call.active():
            call.cancel()
        if not result.called:
            result.errback(failure)

    d.addCallbacks(ok, err)
    return result


def _describe(error: BaseException | None) -> str:
    if error is None:
        return "unknown error"
    text = str(error)
    name = type(error).__name__
    return f"{name}: {text}" if text else name


class _AmqpProtocol(Protocol):
    """One TCP connection: forwards bytes to the AMQP client and reports its
    lifecycle to the broker."""

    def __init__(self, broker: RabbitMQBroker) -> None:
        self.broker = broker
        s = broker.settings
        self.amqp = AmqpClient(
            broker.reactor,
            vhost=s.vhost,
            username=s.username,
            password=s.password,
            heartbeat=s.heartbeat,
        )
        #: Fires when the TCP connection is gone.
        self.lost: Deferred[None] = Deferred()
        self.is_lost = False
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
        self.broker._connection_made(self)

    @override
    def dataReceived(self, data: bytes) -> None:
        self.amqp.dataReceived(data)

    @override
    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.is_lost = True
        try:
            self.broker._connection_lost(self, reason)
            self.amqp.connectionLost(reason)
        finally:
            self.broker._connection_ended(self)
            self.lost.callback(None)

    def abort(self) -> None:
        if not self.is_lost and self.transport is not None:
            cast(ITCPTransport, self.transport).abortConnection()


class _AmqpFactory(Factory):
    noisy = False

    def __init__(self, broker: RabbitMQBroker) -> None:
        self.broker = broker

    @override
    def buildProtocol(self, addr: IAddress | None) -> _AmqpProtocol:
        return _AmqpProtocol(self.broker)


@attrs.define(eq=False)
class _Live:
    """A connection that is fully set up."""

    protocol: _AmqpProtocol
    publish_channel: AmqpChannel

    @property
    def lost(self) -> bool:
        return self.protocol.is_lost


@attrs.define(eq=False)
class _Attachment:
    """A consumer's channel and consumer tag on one connection."""

    live: _Live
    channel: AmqpChannel
    consumer_tag: str = ""
    failed_declared: bool = False
    #: Handlers running for messages delivered on this channel.
    running: int = 0
    #: The consumer was cancelled; close the channel once ``running`` is 0.
    retiring: bool = False

    @property
    def usable(self) -> bool:
        return not self.live.lost and self.channel.is_open


class RabbitMQConsumer:
    """A consumer that re-attaches itself to every new connection."""

    def __init__(
        self,
        broker: RabbitMQBroker,
        queue: str,
        handler: MessageHandler,
        prefetch: int,
    ) -> None:
        self.queue = queue
        self._broker = broker
        self._handler = handler
        self._prefetch = prefetch
        self._attachment: _Attachment | None = None
        self._attaching: Deferred[None] | None = None
        self._running = 0
        self._drained: list[Deferred[None]] = []
        self._retry: IDelayedCall | None = None
        self._retries = 0
        self._stopped = False
        self._stop_done: Deferred[None] | None = None

    def __repr__(self) -> str:
        return f"<RabbitMQ consumer of {self.queue!r}>"

    # -- attaching -----------------------------------------------------------

    async def attach(self, live: _Live) -> None:
        """Open a channel, declare and bind the queue, start consuming."""
        broker = self._broker
        channel = await broker._bounded(live.protocol.amqp.channel(), "channel open")
        try:
            await broker._bounded(
                channel.basic_qos(prefetch_count=self._prefetch), "basic.qos"
            )
            await broker._declare_on(channel, self.queue)
            # Deliveries may follow basic.consume-ok in the same read, before
            # this coroutine resumes: the callbacks hold the attachment.
            attachment = _Attachment(live=live, channel=channel)
            attachment.consumer_tag = await broker._bounded(
                channel.basic_consume(
                    self.queue,
                    lambda delivery: self._delivered(attachment, delivery),
                    lambda reason: self._cancelled(attachment),
                ),
                "basic.consume",
            )
        except BaseException:
            _close_quietly(channel)
            raise
        if self._stopped or live.lost:
            _close_quietly(channel)
            return
        self._attachment = attachment
        self._retries = 0

    def attach_soon(self, live: _Live) -> None:
        """Attach in the background; on failure retry while ``live`` lasts."""
        if self._stopped or self._attaching is not None:
            return
        if self._attachment is not None and self._attachment.usable:
            return

        async def run() -> None:
            try:
                await self.attach(live)
            except Exception as e:
                if live.lost or self._stopped or self._broker._closing:
                    return
                _log.warn(
                    "Could not consume {queue}: {error}; retrying",
                    queue=self.queue,
                    error=_describe(e),
                )
                self._schedule_retry(live)
            finally:
                self._attaching = None

        d = ensureDeferred(run())
        if not d.called:
            self._attaching = d

    def _schedule_retry(self, live: _Live) -> None:
        settings = self._broker.settings
        delay = min(
            settings.retry_initial_delay * (2**self._retries),
            settings.retry_max_delay,
        )
        self._retries += 1

        def fire() -> None:
            self._retry = None
            if self._broker._live is live and not live.lost:
                self.attach_soon(live)

        self._retry = self._broker.reactor.callLater(delay, fire)

    def _cancel_retry(self) -> None:
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        self._retry = None

    # -- delivering ----------------------------------------------------------

    def _delivered(self, attachment: _Attachment, delivery: Delivery) -> None:
        # Counted before the handler starts: it may call stop() right away.
        self._running += 1
        attachment.running += 1
        ensureDeferred(self._handle(attachment, delivery)).addBoth(
            self._finished, attachment
        )

    def _cancelled(self, attachment: _Attachment) -> None:
        """The broker cancelled the consumer, or its channel or connection
        closed (not called after our own ``basic.cancel``)."""
        if self._attachment is attachment:
            self._attachment = None
        live = attachment.live
        if self._stopped or live.lost or self._broker._live is not live:
            return
        # Channel closed or consumer cancelled under a live connection.  Running
        # handlers still ack on the old channel, which is closed after them.
        _log.warn("Consumer of {queue} was cancelled; re-attaching", queue=self.queue)
        attachment.retiring = True
        if attachment.running == 0:
            _close_quietly(attachment.channel)
        self._schedule_retry(live)

    def _finished(self, result: object, attachment: _Attachment) -> None:
        attachment.running -= 1
        if attachment.retiring and attachment.running == 0:
            _close_quietly(attachment.channel)
        self._running -= 1
        if self._running == 0:
            drained, self._drained = self._drained, []
            for waiter in drained:
                waiter.callback(None)

    async def _handle(self, attachment: _Attachment, received: Delivery) -> None:
        tag = received.delivery_tag
        body = received.body
        try:
            message = from_json(body)
        except ValueError:
            _log.error(
                "Not a vumi message on {queue}; moving it to the failed queue",
                queue=self.queue,
            )
            await self._dead_letter(attachment, tag, body)
            return
        try:
            await self._handler(message)
        except RETRY_LATER as exc:
            _log.warn(
                "Requeueing a message of {queue} for later: {error}",
                queue=self.queue,
                error=exc,
            )
            await _pause(self._broker.reactor, TEMPORARY_FAILURE_PAUSE)
            _settle(attachment, "nack", tag)
            return
        except Exception:
            redelivered = received.redelivered
            _log.failure(
                "Handler for {queue} failed ({what})",
                queue=self.queue,
                what="moving to failed queue" if redelivered else "requeueing",
            )
            if redelivered:
                await self._dead_letter(attachment, tag, body)
            else:
                _settle(attachment, "nack", tag)
            return
        _settle(attachment, "ack", tag)

    async def _dead_letter(
        self, attachment: _Attachment, tag: int, body: bytes
    ) -> None:
        failed = topology.failed(self.queue)
        try:
            if not attachment.failed_declared:
                await self._broker._declare_on(attachment.channel, failed)
                attachment.failed_declared = True
            await self._broker._publish_body(failed, body)
        except Exception as e:
            _log.warn(
                "Could not move a message to {failed}: {error}; requeueing it",
                failed=failed,
                error=_describe(e),
            )
            _settle(attachment, "nack", tag)
            return
        _settle(attachment, "ack", tag)

    # -- stopping ------------------------------------------------------------

    async def stop(self) -> None:
        """Cancel the consumer, wait for running handlers, close the channel."""
        if self._stop_done is None:
            self._stop_done = ensureDeferred(self._stop())
        done: Deferred[None] = Deferred()
        self._stop_done.addBoth(_chain_to, done)
        await done

    async def _stop(self) -> None:
        self._stopped = True
        self._broker._consumers.pop(self, None)
        self._cancel_retry()
        if self._attaching is not None:
            await _quiet(self._attaching)
        attachment = self._attachment
        if attachment is not None and attachment.usable:
            await _quiet(
                self._broker._bounded(
                    attachment.channel.basic_cancel(attachment.consumer_tag),
                    "basic.cancel",
                )
            )
        while self._running:
            waiter: Deferred[None] = Deferred()
            self._drained.append(waiter)
            await waiter
        if attachment is not None:
            await self._broker._close_channel(attachment.channel)
        self._attachment = None


def _chain_to(result: object, d: Deferred[None]) -> object:
    if isinstance(result, Failure):
        d.errback(result)
        return None
    d.callback(None)
    return result


async def _quiet(d: Deferred[Any]) -> None:
    """Await ``d`` and ignore its failure (used while tearing down)."""
    try:
        await d
    except Exception as e:
        _log.debug("ignored while stopping: {error}", error=_describe(e))


#: Seconds a consumer waits before requeueing a temporarily failed message.
TEMPORARY_FAILURE_PAUSE = 1.0


async def _pause(clock: Any, seconds: float) -> None:
    from twisted.internet.task import deferLater

    await deferLater(clock, seconds, lambda: None)


def _settle(attachment: _Attachment, how: str, tag: int) -> None:
    """Ack (or nack with requeue) on the channel that delivered the message."""
    if not attachment.usable:
        return  # the broker requeues it when the channel goes away
    try:
        if how == "ack":
            attachment.channel.basic_ack(tag)
        else:
            attachment.channel.basic_nack(tag, requeue=True)
    except Exception as e:
        _log.debug("could not {how} {tag}: {error}", how=how, tag=tag, error=e)


def _close_quietly(channel: AmqpChannel) -> None:
    """Close ``channel`` without waiting (closing never raises)."""
    if channel.is_open:
        channel.close()


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
        (any stream client endpoint, e.g. TLS) is given."""
        self.reactor = reactor
        self.settings = settings
        if endpoint is None:
            endpoint = HostnameEndpoint(
                reactor, settings.host, settings.port, timeout=settings.connect_timeout
            )
        base_policy = backoffPolicy(
            initialDelay=settings.retry_initial_delay,
            maxDelay=settings.retry_max_delay,
            jitter=lambda: random.random() * settings.retry_jitter,
        )
        self._service = ReconnectingClient(
            reactor,
            endpoint,
            _AmqpFactory(self),
            base_policy,
            on_connect_failed=self._connect_failed,
        )
        self._protocol: _AmqpProtocol | None = None
        self._live: _Live | None = None
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
            await _bounded(self.reactor, waiter, timeout, "connecting")
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
        self._close_done.addBoth(_chain_to, done)
        await done

    async def _close(self) -> None:
        self._closing = True
        consumers = list(self._consumers)
        if consumers:
            await _quiet(gatherResults([ensureDeferred(c.stop()) for c in consumers]))
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
                    _log.debug("closing the connection: {error}", error=_describe(e))
            protocol.abort()
            await protocol.lost
        if self._started:
            await self._service.stop()
        if live is not None and self._live is live:
            self._live = None
            self._notify(False)

    # -- connection callbacks ------------------------------------------------

    def _connect_failed(self, failure: Failure) -> None:
        self._last_error = _describe(failure.value)

    def _connection_made(self, protocol: _AmqpProtocol) -> None:
        self._protocol = protocol
        ensureDeferred(self._setup(protocol)).addErrback(
            lambda failure: _log.failure("RabbitMQ set-up failed", failure)
        )

    async def _setup(self, protocol: _AmqpProtocol) -> None:
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
            # Counted and logged by _connection_ended once the socket is gone.
            self._last_error = protocol.close_reason or _describe(e)
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
        live = _Live(protocol=protocol, publish_channel=channel)
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

    def _publish_channel_closed(self, reason: object, live: _Live) -> None:
        if live.lost or self._closing:
            return
        _log.error(
            "RabbitMQ closed the publish channel ({reason}); reconnecting",
            reason=reason,
        )
        live.protocol.abort()

    def _connection_lost(self, protocol: _AmqpProtocol, reason: Failure) -> None:
        if self._protocol is protocol:
            self._protocol = None
        live = self._live
        if live is not None and live.protocol is protocol:
            self._live = None
            if not self._closing:
                self._last_error = protocol.close_reason or _describe(reason.value)
                _log.warn(
                    "Lost the RabbitMQ connection to {where}: {error}",
                    where=self.settings.describe(),
                    error=self._last_error,
                )
            self._notify(False)

    def _connection_ended(self, protocol: _AmqpProtocol) -> None:
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

    def _require_live(self) -> _Live:
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
        return _bounded(self.reactor, d, self.settings.operation_timeout, what)

    async def publish(
        self, routing_key: str, message: Message, ttl: float | None = None
    ) -> None:
        """Publish persistently and await the confirm (:class:`BrokerError`
        when disconnected, nacked or the connection drops first); with
        ``ttl``, RabbitMQ drops the message if it still waits ``ttl`` seconds
        later (the per-message ``expiration``)."""
        properties = _PROPERTIES if ttl is None else _expiring_properties(ttl)
        await self._publish_body(routing_key, to_json(message), properties=properties)

    async def publish_later(
        self, routing_key: str, message: Message, delay: float
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
        channel = await self._bounded(live.protocol.amqp.channel(), "channel open")
        try:
            await take(channel)
        finally:
            await self._close_channel(channel)
        return count

    async def _publish_body(
        self,
        routing_key: str,
        body: bytes,
        exchange: str = EXCHANGE,
        properties: bytes = _PROPERTIES,
    ) -> None:
        live = self._require_live()
        try:
            # The channel fails it after operation_timeout (one timer for all).
            await live.publish_channel.publish(exchange, routing_key, body, properties)
        except ConfirmTimeout as e:
            raise BrokerError(
                f"confirm of a message to {routing_key} timed out after "
                f"{self.settings.operation_timeout:g}s"
            ) from e
        except PublishRefused as e:
            raise BrokerError(f"RabbitMQ refused a message to {routing_key}") from e
        except Exception as e:
            raise BrokerError(
                f"message to {routing_key} not confirmed: {_describe(e)}"
            ) from e

    async def _declare_on(self, channel: AmqpChannel, queue: str) -> None:
        await self._bounded(
            channel.queue_declare(queue=queue, durable=True), "queue.declare"
        )
        await self._bounded(
            channel.queue_bind(queue=queue, exchange=EXCHANGE, routing_key=queue),
            "queue.bind",
        )

    async def _close_channel(self, channel: AmqpChannel) -> None:
        if not channel.is_open:
            return
        await _quiet(self._bounded(channel.close(), "channel close"))

    async def _with_channel(
        self, what: str, use: Callable[[AmqpChannel], Deferred[Any]]
    ) -> None:
        """Run ``use`` on a short-lived channel, so a channel error (e.g. a
        queue declared with other arguments) cannot hurt the others."""
        live = self._require_live()
        try:
            channel = await self._bounded(live.protocol.amqp.channel(), "channel open")
        except BrokerError:
            raise
        except Exception as e:
            raise BrokerError(f"could not {what}: {_describe(e)}") from e
        try:
            await use(channel)
        except BrokerError:
            raise
        except Exception as e:
            raise BrokerError(f"could not {what}: {_describe(e)}") from e
        finally:
            await self._close_channel(channel)

    async def declare_queue(self, queue: str) -> None:
        """Declare the durable queue ``queue`` bound to ``vumi`` by its name."""
        await self._with_channel(
            f"declare {queue}", lambda ch: ensureDeferred(self._declare_on(ch, queue))
        )

    async def delete_queue(self, queue: str) -> None:
        """Delete ``queue`` and its messages (tests and clean-up).

        Stop its consumers first: RabbitMQ cancels them, and a consumer that
        was not stopped attaches again, declaring the queue anew.
        """
        await self._with_channel(
            f"delete {queue}",
            lambda ch: self._bounded(ch.queue_delete(queue=queue), "queue.delete"),
        )

    async def consume(
        self,
        queue: str,
        handler: MessageHandler,
        prefetch: int = DEFAULT_PREFETCH,
    ) -> RabbitMQConsumer:
        """Start consuming ``queue``; :class:`BrokerError` when disconnected.

        The consumer is set up again on every later connection until stopped.
        """
        if prefetch < 1:
            raise ValueError("prefetch must be at least 1")
        live = self._require_live()
        consumer = RabbitMQConsumer(self, queue, handler, prefetch)
        try:
            await consumer.attach(live)
        except BrokerError:
            raise
        except Exception as e:
            raise BrokerError(f"could not consume {queue}: {_describe(e)}") from e
        if self._closing:
            await consumer.stop()
            raise BrokerError("the broker has been closed")
        self._consumers[consumer] = None
        current = self._live
        if current is not live and current is not None:
            # The connection dropped while attaching: follow the new one.
            consumer.attach_soon(current)
        return consumer
