"""The message broker contract: publish vumi messages, consume queues.

Two implementations keep it (``junebug/tests/contract``): RabbitMQ through our
own AMQP 0-9-1 client (:mod:`junebug.amqp.rabbitmq` over
:mod:`junebug.amqp.client`) and an in-memory broker (:mod:`junebug.amqp.memory`)
for ``jb --embedded`` and unit tests.

Semantics, the same in both:

- One exchange, ``vumi`` (direct, durable).  A queue is named exactly like the
  routing key it is bound with.  Publishing to a key no queue is bound to drops
  the message, as RabbitMQ does.
- :meth:`Broker.publish` returns once the broker has taken responsibility for
  the message (a publisher confirm for RabbitMQ; messages are persistent).  It
  raises :class:`~junebug.errors.BrokerError` if the broker is unreachable or
  refuses the message, :class:`~junebug.errors.BrokerBlocked` (sending
  nothing) while the broker blocks publishing, and
  :class:`~junebug.errors.PublishOutcomeUnknown` when the message was sent
  but its confirm did not come: it may still be delivered.
- :meth:`Broker.consume` declares the durable queue, binds it and delivers each
  message to the handler with at most ``prefetch`` unacknowledged at once.  A
  message is acknowledged when its handler returns.  If the handler raises,
  :func:`junebug.amqp.policy.settlement` decides: requeued once, then moved to
  the queue ``<queue>.failed`` so nothing is lost and a poison message cannot
  loop; a temporary failure is requeued after a pause without a strike.  A
  handler runs under a :class:`~junebug.amqp.lease.DeliveryLease`, lost when
  its delivery dies with the connection.
- Consumers survive reconnection: after a lost connection they are set up again.
- :meth:`Broker.publish` with ``ttl`` makes the message expire after waiting
  ``ttl`` seconds in its queue (RabbitMQ's per-message ``expiration``).
- :meth:`Broker.delete_queue` deletes a queue and the messages in it (a
  deleted channel's queues, for instance); deleting an absent queue succeeds.
- :meth:`Broker.publish_later` delays a message durably (RabbitMQ: per-tier
  queues with a message TTL that dead-letter back to ``vumi``), which is how
  failed HTTP deliveries are retried without holding anything in memory.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from junebug.messages import AnyMessage, Message

MessageHandler = Callable[[Message], Awaitable[None]]

EXCHANGE = "vumi"
DEFAULT_PREFETCH = 20
#: Delays (seconds) a delayed publish is rounded up to; the last one caps it.
DELAY_TIERS = (1, 5, 30, 120, 600, 3600)


def delay_tier(delay: float) -> int:
    """The smallest tier of at least ``delay`` seconds (the largest at most)."""
    for tier in DELAY_TIERS:
        if delay <= tier:
            return tier
    return DELAY_TIERS[-1]


def delay_exchange(tier: int) -> str:
    """The exchange (and queue) holding messages delayed by ``tier`` seconds."""
    return f"junebug.delay.{tier}s"


class Consumer(Protocol):
    """A running subscription to one queue."""

    queue: str

    async def stop(self) -> None:
        """Stop delivering; unacknowledged messages go back to the queue."""


class Broker(Protocol):
    """Publishes and consumes vumi messages."""

    def is_connected(self) -> bool:
        """True while the broker connection is up."""

    def blocked_reason(self) -> str | None:
        """Why the broker refuses publishing now (RabbitMQ's
        ``connection.blocked``: a memory or disk alarm), else ``None``."""

    async def publish(
        self, routing_key: str, message: AnyMessage, ttl: float | None = None
    ) -> None:
        """Publish persistently to the ``vumi`` exchange and await the confirm;
        with ``ttl`` the message is dropped if it still waits in its queue
        ``ttl`` seconds later (whether a consumer that is free right then gets
        a ``ttl`` of 0 is up to the broker)."""

    async def declare_queue(self, queue: str, expires: float | None = None) -> None:
        """Declare a durable queue bound to ``vumi`` with its own name as key;
        with ``expires`` the broker deletes it (and its messages) once it
        has had no consumer for ``expires`` seconds (RabbitMQ's
        ``x-expires``), e.g. a process's own queue after the process is gone.
        Declare a queue always with the same ``expires``."""

    async def declare_queues(self, queues: list[str]) -> None:
        """:meth:`declare_queue` each of ``queues`` (no ``expires``), in one
        go where the broker can (one short-lived channel for all)."""

    async def queue_depths(self, queues: list[str]) -> dict[str, int]:
        """How many messages wait in each of ``queues`` (ready, not yet
        delivered); a queue that does not exist is left out."""

    async def delete_queue(self, queue: str) -> None:
        """Delete ``queue`` and the messages in it; an absent queue is fine.

        Stop the queue's consumers first: a running consumer declares its
        queue again when RabbitMQ cancels it.
        """

    async def delete_queues(self, queues: list[str]) -> None:
        """:meth:`delete_queue` each of ``queues``, in one go where the
        broker can."""

    async def consume(
        self,
        queue: str,
        handler: MessageHandler,
        prefetch: int = DEFAULT_PREFETCH,
        expires: float | None = None,
    ) -> Consumer:
        """Declare (with ``expires``, see :meth:`declare_queue`) and bind
        ``queue``, then deliver its messages to ``handler``."""

    async def publish_later(
        self, routing_key: str, message: AnyMessage, delay: float
    ) -> None:
        """Publish so the message reaches ``routing_key`` after about ``delay``
        seconds (rounded up to a tier of :data:`DELAY_TIERS`), durably."""

    async def drain(
        self, queue: str, handler: MessageHandler, limit: int = 1000
    ) -> int:
        """Hand up to ``limit`` waiting messages of ``queue`` to ``handler``,
        acknowledging each after its handler returns; returns how many."""

    async def peek(self, queue: str, limit: int = 1000) -> list[Message]:
        """Copies of up to ``limit`` waiting messages of ``queue``, oldest
        first, each at most once; the messages stay where they are, even if
        the caller is cancelled half-way."""

    async def close(self) -> None:
        """Stop every consumer and close the connection."""
