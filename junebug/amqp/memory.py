"""The :class:`~junebug.amqp.broker.Broker` contract in memory.

Used by ``jb --embedded`` and by unit tests.  It behaves like
:class:`~junebug.amqp.rabbitmq.RabbitMQBroker` (see the contract in
:mod:`junebug.amqp.broker`): a message published to a key no queue is bound to
is dropped, queues keep messages while nobody consumes, at most ``prefetch``
messages per consumer are unacknowledged, and a handler's failure is settled
as :func:`junebug.amqp.policy.settlement` says (the pause before a
"requeue later" is on the injected clock).

Messages are stored as the JSON bytes RabbitMQ would carry and parsed again
for every delivery, so a handler never shares a dict with the publisher or
with another handler.  Deliveries are scheduled with ``callLater(0, ...)`` on
the injected clock, so ``publish`` never runs a handler before it returns.
With a :class:`twisted.internet.task.Clock`, call ``clock.advance(0)`` to
deliver.

:meth:`MemoryBroker.disconnect` and :meth:`MemoryBroker.reconnect` simulate an
outage: publishing fails meanwhile, unacknowledged messages go back to their
queues (flagged as redelivered), the leases of their handlers are lost
(:mod:`junebug.amqp.lease`) and consumers resume on reconnection.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

import attrs
from twisted.internet.defer import ensureDeferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from junebug.amqp import topology
from junebug.amqp.broker import DEFAULT_PREFETCH, MessageHandler, delay_tier
from junebug.amqp.lease import DeliveryLease, run_leased
from junebug.amqp.policy import (
    Settlement,
    settle_handled,
    settlement,
)
from junebug.amqp.waiting import RunningHandlers, Waiters
from junebug.errors import BrokerBlocked, BrokerError
from junebug.messages import from_json, to_json

if TYPE_CHECKING:
    from junebug.messages import AnyMessage, Message

__all__ = ["ConnectionListener", "MemoryBroker", "MemoryConsumer"]

#: Called with ``True`` when the broker is (again) connected, ``False`` when not.
ConnectionListener = Callable[[bool], object]

_log = Logger(namespace="junebug.amqp.memory")


@attrs.frozen
class _Envelope:
    body: bytes
    redelivered: bool = False
    #: When the message expires (clock seconds), if it was published with a ttl.
    expires_at: float | None = None

    def again(self) -> _Envelope:
        """The envelope of this message put back in its queue."""
        return attrs.evolve(self, redelivered=True)


@attrs.define(eq=False)
class _Delivery:
    envelope: _Envelope
    #: Lost when a simulated disconnection requeued the message.
    lease: DeliveryLease = attrs.field(factory=DeliveryLease)


@attrs.define(eq=False)
class _Queue:
    name: str
    messages: deque[_Envelope] = attrs.field(factory=deque)
    consumers: list[MemoryConsumer] = attrs.field(factory=list)
    next_consumer: int = 0
    #: Deleted after this many seconds without a consumer (``x-expires``).
    expires: float | None = None
    expiry: IDelayedCall | None = None


class MemoryConsumer:
    """A subscription to one in-memory queue."""

    def __init__(
        self,
        broker: MemoryBroker,
        queue: str,
        handler: MessageHandler,
        prefetch: int,
    ) -> None:
        self.queue = queue
        self.prefetch = prefetch
        self._broker = broker
        self._handler = handler
        #: In delivery order, so a disconnection requeues them in order.
        self._unacked: dict[_Delivery, None] = {}
        self._handlers = RunningHandlers()
        self._stopped = False

    def __repr__(self) -> str:
        return f"<MemoryConsumer of {self.queue!r}>"

    @property
    def has_capacity(self) -> bool:
        return not self._stopped and len(self._unacked) < self.prefetch

    @property
    def unacked(self) -> int:
        return len(self._unacked)

    @property
    def busy(self) -> bool:
        """True while any handler is still running."""
        return self._handlers.count > 0

    def deliver(self, envelope: _Envelope) -> None:
        delivery = _Delivery(envelope)
        self._unacked[delivery] = None
        # Counted before the handler starts: it may call stop() right away.
        self._handlers.started()
        ensureDeferred(self._handle(delivery)).addBoth(self._finished)

    def _finished(self, result: object) -> None:
        self._handlers.finished()
        self._broker._check_idle()

    async def _handle(self, delivery: _Delivery) -> None:
        envelope = delivery.envelope
        error: Exception | None = None
        try:
            message = from_json(envelope.body)
        except ValueError:
            _log.error(
                "Not a vumi message on {queue}; moving it to the failed queue",
                queue=self.queue,
            )
            unreadable = settlement(None, redelivered=False, readable=False)
            self._settle(delivery, unreadable)
            return
        try:
            await run_leased(delivery.lease, self._handler, message)
        except Exception as exc:
            error = exc
        if delivery.lease.lost:
            return  # already requeued by a simulated disconnection
        how = await settle_handled(
            error,
            redelivered=envelope.redelivered,
            queue=self.queue,
            clock=self._broker._clock,
            log=_log,
            pause=not self._stopped,
        )
        self._settle(delivery, how)

    def _settle(self, delivery: _Delivery, how: Settlement) -> None:
        if delivery.lease.lost or delivery not in self._unacked:
            return  # already requeued by a simulated disconnection
        del self._unacked[delivery]
        self._broker._settled(self.queue, delivery.envelope, how)

    def abandon_unacked(self) -> list[_Envelope]:
        """Give up every unacknowledged message (a lost connection)."""
        envelopes = []
        for delivery in self._unacked:
            delivery.lease.lose()
            envelopes.append(delivery.envelope)
        self._unacked.clear()
        return envelopes

    async def stop(self) -> None:
        """Stop delivering and wait for the running handlers to finish."""
        if not self._stopped:
            self._stopped = True
            self._broker._remove_consumer(self)
        await self._handlers.idle()


class MemoryBroker:
    """An in-memory :class:`~junebug.amqp.broker.Broker` (see module docs)."""

    def __init__(self, clock: IReactorTime) -> None:
        self._clock = clock
        self._queues: dict[str, _Queue] = {}
        self._scheduled: dict[str, IDelayedCall] = {}
        self._consumers: dict[MemoryConsumer, None] = {}
        self._listeners: list[ConnectionListener] = []
        self._connect_waiters = Waiters()
        self._idle_waiters = Waiters()
        self._connected = True
        self._closed = False
        self._blocked: str | None = None
        self._delayed: dict[IDelayedCall, None] = {}

    # -- connection state ------------------------------------------------------

    def is_connected(self) -> bool:
        return self._connected

    def blocked_reason(self) -> str | None:
        return self._blocked

    def block(self, reason: str = "low on memory") -> None:
        """Simulate RabbitMQ's ``connection.blocked``: publishing raises
        :class:`~junebug.errors.BrokerBlocked` until :meth:`unblock`."""
        self._blocked = reason

    def unblock(self) -> None:
        self._blocked = None

    async def when_connected(self, timeout: float | None = None) -> None:
        """Return once connected; :class:`BrokerError` after ``timeout``."""
        if self._closed:
            raise BrokerError("the broker has been closed")
        if self._connected:
            return
        await self._connect_waiters.wait(
            self._clock,
            timeout,
            lambda seconds: BrokerError(f"not connected within {seconds:g}s"),
        )

    def add_connection_listener(
        self, listener: ConnectionListener
    ) -> Callable[[], None]:
        """Call ``listener(connected)`` on every change; returns a remover."""
        self._listeners.append(listener)

        def remove() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return remove

    def _notify(self, connected: bool) -> None:
        for listener in list(self._listeners):
            try:
                listener(connected)
            except Exception:
                _log.failure("AMQP connection listener failed")

    def disconnect(self) -> None:
        """Simulate a lost connection: unacknowledged messages are requeued
        (as redelivered), deliveries and publishing stop until reconnected."""
        if not self._connected or self._closed:
            return
        self._connected = False
        for call in self._scheduled.values():
            if call.active():
                call.cancel()
        self._scheduled.clear()
        for consumer in self._consumers:
            envelopes = consumer.abandon_unacked()
            queue = self._queues.get(consumer.queue)
            if queue is not None:
                for envelope in reversed(envelopes):
                    queue.messages.appendleft(envelope.again())
        self._notify(False)
        self._check_idle()

    def reconnect(self) -> None:
        """End a simulated outage; consumers resume."""
        if self._connected or self._closed:
            return
        self._connected = True
        for name in self._queues:
            self._schedule(name)
        self._connect_waiters.release()
        self._notify(True)

    def _require_connected(self) -> None:
        if self._closed:
            raise BrokerError("the broker has been closed")
        if not self._connected:
            raise BrokerError("not connected to the message broker")

    def _require_unblocked(self, routing_key: str) -> None:
        if self._blocked is not None:
            raise BrokerBlocked(
                f"RabbitMQ blocks publishing ({self._blocked});"
                f" the message to {routing_key} was not sent"
            )

    # -- the Broker contract -----------------------------------------------------

    async def publish(
        self, routing_key: str, message: AnyMessage, ttl: float | None = None
    ) -> None:
        """Route ``message`` to the queue bound with ``routing_key``, if any;
        with ``ttl``, it is dropped if still waiting ``ttl`` seconds later."""
        self._require_connected()
        self._require_unblocked(routing_key)
        self._route(routing_key, to_json(message), ttl)

    async def publish_later(
        self, routing_key: str, message: AnyMessage, delay: float
    ) -> None:
        """Route ``message`` after the delay tier of ``delay`` seconds."""
        self._require_connected()
        self._require_unblocked(routing_key)
        body = to_json(message)
        call: IDelayedCall | None = None

        def arrive() -> None:
            self._delayed.pop(call, None)  # type: ignore[arg-type]
            if not self._closed:
                self._route(routing_key, body)

        call = self._clock.callLater(delay_tier(delay), arrive)
        self._delayed[call] = None

    async def drain(
        self, queue: str, handler: MessageHandler, limit: int = 1000
    ) -> int:
        """Hand waiting messages of ``queue`` to ``handler`` (acked on return)."""
        self._require_connected()
        q = self._queues.get(queue)
        count = 0
        while q is not None and count < limit:
            envelope = self._take(q)
            if envelope is None:
                break
            try:
                await handler(from_json(envelope.body))
            except BaseException:
                q.messages.appendleft(envelope.again())
                raise
            count += 1
        return count

    async def peek(self, queue: str, limit: int = 1000) -> list[Message]:
        """Copies of up to ``limit`` waiting messages of ``queue``, oldest first."""
        self._require_connected()
        q = self._queues.get(queue)
        if q is None:
            return []
        return [from_json(envelope.body) for envelope in list(q.messages)[:limit]]

    async def declare_queue(self, queue: str, expires: float | None = None) -> None:
        """Declare ``queue``, bound by its own name."""
        self._require_connected()
        self._unused_since_now(self._declare(queue, expires))

    async def declare_queues(self, queues: list[str]) -> None:
        """Declare each of ``queues``."""
        for queue in queues:
            await self.declare_queue(queue)

    async def queue_depths(self, queues: list[str]) -> dict[str, int]:
        """Messages waiting in each existing queue of ``queues``."""
        self._require_connected()
        return {
            name: len(q.messages)
            for name in queues
            if (q := self._queues.get(name)) is not None
        }

    async def delete_queue(self, queue: str) -> None:
        """Delete ``queue`` and its messages (tests and clean-up); its
        consumers are stopped.  Stop them first to behave as with RabbitMQ."""
        self._require_connected()
        q = self._queues.pop(queue, None)
        if q is not None:
            for consumer in list(q.consumers):
                await consumer.stop()
            if q.expiry is not None and q.expiry.active():
                q.expiry.cancel()

    async def delete_queues(self, queues: list[str]) -> None:
        """Delete each of ``queues``."""
        for queue in queues:
            await self.delete_queue(queue)

    async def consume(
        self,
        queue: str,
        handler: MessageHandler,
        prefetch: int = DEFAULT_PREFETCH,
        expires: float | None = None,
    ) -> MemoryConsumer:
        """Declare ``queue`` and deliver its messages to ``handler``."""
        if prefetch < 1:
            raise ValueError("prefetch must be at least 1")
        self._require_connected()
        q = self._declare(queue, expires)
        consumer = MemoryConsumer(self, queue, handler, prefetch)
        q.consumers.append(consumer)
        self._unused_since_now(q)
        self._consumers[consumer] = None
        self._schedule(queue)
        return consumer

    async def close(self) -> None:
        """Stop every consumer; later operations raise :class:`BrokerError`."""
        if self._closed:
            return
        for consumer in list(self._consumers):
            await consumer.stop()
        was_connected = self._connected
        self._closed = True
        for q in self._queues.values():
            if q.expiry is not None and q.expiry.active():
                q.expiry.cancel()
        self._connected = False
        for delayed in list(self._delayed):
            if delayed.active():
                delayed.cancel()
        self._delayed.clear()
        for call in self._scheduled.values():
            if call.active():
                call.cancel()
        self._scheduled.clear()
        self._connect_waiters.fail(BrokerError("the broker has been closed"))
        if was_connected:
            self._notify(False)
        self._check_idle()

    # -- inspection (tests) ------------------------------------------------------

    def queue_messages(self, queue: str) -> list[Message]:
        """The messages waiting in ``queue`` (not those being handled)."""
        q = self._queues.get(queue)
        if q is None:
            return []
        self._drop_expired(q)
        return [from_json(envelope.body) for envelope in q.messages]

    def pending(self, queue: str) -> int:
        """Messages in ``queue`` that are waiting or being handled."""
        q = self._queues.get(queue)
        if q is not None:
            self._drop_expired(q)
        waiting = len(q.messages) if q is not None else 0
        return waiting + sum(c.unacked for c in self._consumers if c.queue == queue)

    def has_queue(self, queue: str) -> bool:
        return queue in self._queues

    def is_idle(self) -> bool:
        """No delivery scheduled and no handler running."""
        return not self._scheduled and not any(c.busy for c in self._consumers)

    async def flush(self, timeout: float | None = None) -> None:
        """Wait until :meth:`is_idle`: everything deliverable was handled.

        Messages in queues without consumers stay there.  Raises
        :class:`TimeoutError` after ``timeout`` seconds (on the injected clock).
        """
        if self.is_idle():
            return
        await self._idle_waiters.wait(
            self._clock,
            timeout,
            lambda seconds: TimeoutError(
                f"the memory broker was still busy after {seconds:g}s"
            ),
        )

    def _check_idle(self) -> None:
        if self._idle_waiters and self.is_idle():
            self._idle_waiters.release()

    # -- routing and delivery ------------------------------------------------------

    def _declare(self, queue: str, expires: float | None = None) -> _Queue:
        q = self._queues.get(queue)
        if q is None:
            q = self._queues[queue] = _Queue(queue, expires=expires)
        return q

    def _unused_since_now(self, q: _Queue) -> None:
        """Restart the queue's ``expires`` countdown (used just now)."""
        if q.expiry is not None and q.expiry.active():
            q.expiry.cancel()
        q.expiry = None
        if q.expires is not None and not q.consumers:
            q.expiry = self._clock.callLater(q.expires, self._expire, q)

    def _expire(self, q: _Queue) -> None:
        q.expiry = None
        if not q.consumers and self._queues.get(q.name) is q:
            del self._queues[q.name]

    def _route(self, routing_key: str, body: bytes, ttl: float | None = None) -> None:
        q = self._queues.get(routing_key)
        if q is None:
            return  # nothing bound: dropped, as RabbitMQ does
        expires_at = None if ttl is None else self._clock.seconds() + ttl
        q.messages.append(_Envelope(body, expires_at=expires_at))
        self._schedule(routing_key)

    def _drop_expired(self, q: _Queue) -> None:
        now = self._clock.seconds()
        if any(e.expires_at is not None and e.expires_at <= now for e in q.messages):
            q.messages = deque(
                e for e in q.messages if e.expires_at is None or e.expires_at > now
            )

    def _take(self, q: _Queue) -> _Envelope | None:
        """The next unexpired message of ``q`` (expired ones are dropped)."""
        self._drop_expired(q)
        return q.messages.popleft() if q.messages else None

    def _schedule(self, queue: str) -> None:
        if queue in self._scheduled or not self._connected:
            return
        q = self._queues.get(queue)
        if q is None or not q.messages or not q.consumers:
            return
        self._scheduled[queue] = self._clock.callLater(0, self._dispatch, queue)

    def _dispatch(self, queue: str) -> None:
        self._scheduled.pop(queue, None)
        q = self._queues.get(queue)
        if q is not None and self._connected:
            while q.messages:
                consumer = self._next_consumer(q)
                if consumer is None:
                    break
                envelope = self._take(q)
                if envelope is None:
                    break
                consumer.deliver(envelope)
        self._check_idle()

    def _next_consumer(self, q: _Queue) -> MemoryConsumer | None:
        count = len(q.consumers)
        for offset in range(count):
            index = (q.next_consumer + offset) % count
            consumer = q.consumers[index]
            if consumer.has_capacity:
                q.next_consumer = (index + 1) % count
                return consumer
        return None

    def _settled(self, queue: str, envelope: _Envelope, how: Settlement) -> None:
        q = self._queues.get(queue)
        if how is Settlement.REQUEUE and q is not None:
            q.messages.appendleft(envelope.again())
        elif how is Settlement.REQUEUE_LATER and q is not None:
            q.messages.appendleft(envelope)
        elif how is Settlement.DEAD_LETTER:
            failed = topology.failed(queue)
            self._declare(failed)
            self._route(failed, envelope.body)
        self._schedule(queue)

    def _remove_consumer(self, consumer: MemoryConsumer) -> None:
        self._consumers.pop(consumer, None)
        q = self._queues.get(consumer.queue)
        if q is not None and consumer in q.consumers:
            q.consumers.remove(consumer)
            q.next_consumer = 0
            self._unused_since_now(q)
        self._check_idle()
