"""A RabbitMQ consumer that follows the broker's connection.

:class:`RabbitMQConsumer` gets a channel on every connection
:class:`~junebug.amqp.rabbitmq.RabbitMQBroker` sets up (its own while the
connection's channel numbers last, else one shared with other consumers:
:mod:`junebug.amqp.consumer_channels`), declares and binds its queue, applies
``basic.qos(prefetch)`` and runs the handler for each delivery.  A handler's
outcome is settled as :func:`junebug.amqp.policy.settlement` says, on the
channel that delivered the message.  Each handler runs under a
:class:`~junebug.amqp.lease.DeliveryLease`, lost when that channel closes
(the broker then redelivers the message), so retrying work can stop; on a
shared channel that is every consumer's leases on it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger

from junebug.amqp import topology
from junebug.amqp.broker import MessageHandler
from junebug.amqp.client import AmqpChannel, Delivery
from junebug.amqp.consumer_channels import ConsumerChannels, SharedChannel
from junebug.amqp.lease import DeliveryLease, run_leased
from junebug.amqp.policy import (
    Settlement,
    settle_handled,
)
from junebug.amqp.waiting import RunningHandlers, chain_to, describe, quiet
from junebug.messages import from_json

if TYPE_CHECKING:
    from junebug.amqp.connection import AmqpConnection
    from junebug.amqp.rabbitmq import RabbitMQBroker

__all__ = ["RabbitMQConsumer"]

_log = Logger(namespace="junebug.amqp.rabbitmq")


@attrs.define(eq=False)
class Live:
    """A connection that is fully set up."""

    protocol: AmqpConnection
    publish_channel: AmqpChannel
    channels: ConsumerChannels
    #: ``<queue>.failed`` queues declared on this connection.
    failed_declared: set[str] = attrs.field(factory=set)

    @property
    def lost(self) -> bool:
        return self.protocol.is_lost


@attrs.define(eq=False)
class _Attachment:
    """A consumer's channel and consumer tag on one connection."""

    live: Live
    shared: SharedChannel
    consumer_tag: str = ""
    #: Handlers running for messages delivered on this channel.
    running: int = 0
    #: The consumer was cancelled; leave the channel once ``running`` is 0.
    retiring: bool = False
    left: bool = False
    #: Of the handlers running; lost when the channel goes.
    leases: set[DeliveryLease] = attrs.field(factory=set)

    def lose_leases(self, reason: object = None) -> object:
        """The channel is gone: its unacknowledged deliveries died with it.
        (Returns ``reason``, as a callback of the channel's ``on_closed``.)"""
        leases, self.leases = self.leases, set()
        for lease in leases:
            lease.lose()
        return reason

    @property
    def channel(self) -> AmqpChannel:
        return self.shared.channel

    @property
    def usable(self) -> bool:
        return not self.live.lost and self.channel.is_open

    def leave(self) -> Deferred[Any] | None:
        """Give the channel up (the last consumer on it closes it; the
        Deferred returned then fires once it is closed)."""
        if self.left:
            return None
        self.left = True
        return self.live.channels.release(self.shared)


class RabbitMQConsumer:
    """A consumer that re-attaches itself to every new connection."""

    def __init__(
        self,
        broker: RabbitMQBroker,
        queue: str,
        handler: MessageHandler,
        prefetch: int,
        expires: float | None = None,
    ) -> None:
        self.queue = queue
        self._broker = broker
        self._handler = handler
        self._prefetch = prefetch
        self._expires = expires
        self._attachment: _Attachment | None = None
        self._attaching: Deferred[None] | None = None
        self._handlers = RunningHandlers()
        self._retry: IDelayedCall | None = None
        self._retries = 0
        self._stopped = False
        self._stop_done: Deferred[None] | None = None

    def __repr__(self) -> str:
        return f"<RabbitMQ consumer of {self.queue!r}>"

    # -- attaching -----------------------------------------------------------

    async def attach(self, live: Live) -> None:
        """Get a channel, declare and bind the queue, start consuming."""
        broker = self._broker
        shared, own = await live.channels.acquire()
        channel = shared.channel
        # Deliveries may follow basic.consume-ok in the same read, before
        # this coroutine resumes: the callbacks hold the attachment.
        attachment = _Attachment(live=live, shared=shared)
        # Every consumer on a shared channel loses its leases with it.
        channel.on_closed.addBoth(attachment.lose_leases)
        try:
            if own:
                await broker._declare_on(channel, self.queue, self._expires)
            else:
                # Not on a shared channel: an error would close it for all.
                await broker.declare_queue(self.queue, self._expires)
            # Sent back to back: no other consumer's qos comes between.
            qos = channel.basic_qos(prefetch_count=self._prefetch)
            consuming = channel.basic_consume(
                self.queue,
                lambda delivery: self._delivered(attachment, delivery),
                lambda reason: self._cancelled(attachment),
            )
            await broker._bounded(qos, "basic.qos")
            attachment.consumer_tag = await broker._bounded(consuming, "basic.consume")
        except BaseException:
            attachment.leave()
            raise
        if self._stopped or live.lost:
            if attachment.usable:
                channel.basic_cancel(attachment.consumer_tag).addErrback(lambda _: None)
            attachment.leave()
            return
        live.channels.share(shared)
        self._attachment = attachment
        self._retries = 0

    def attach_soon(self, live: Live) -> None:
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
                    error=describe(e),
                )
                self._schedule_retry(live)
            finally:
                self._attaching = None

        d = ensureDeferred(run())
        if not d.called:
            self._attaching = d

    def _schedule_retry(self, live: Live) -> None:
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

    def connection_lost(self, live: Live) -> None:
        """``live`` is gone: lose the leases of its running handlers."""
        attachment = self._attachment
        if attachment is not None and attachment.live is live:
            attachment.lose_leases()

    # -- delivering ----------------------------------------------------------

    def _delivered(self, attachment: _Attachment, delivery: Delivery) -> None:
        # Counted before the handler starts: it may call stop() right away.
        self._handlers.started()
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
            attachment.leave()
        self._schedule_retry(live)

    def _finished(self, result: object, attachment: _Attachment) -> None:
        attachment.running -= 1
        if attachment.retiring and attachment.running == 0:
            attachment.leave()
        self._handlers.finished()

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
        lease = DeliveryLease()
        attachment.leases.add(lease)
        error: Exception | None = None
        try:
            await run_leased(lease, self._handler, message)
        except Exception as exc:
            error = exc
        finally:
            attachment.leases.discard(lease)
        if lease.lost:
            return  # the broker delivers it again: nothing left to settle
        how = await settle_handled(
            error,
            redelivered=received.redelivered,
            queue=self.queue,
            clock=self._broker.reactor,
            log=_log,
            pause=not self._stopped,
        )
        if how is Settlement.DEAD_LETTER:
            await self._dead_letter(attachment, tag, body)
        else:
            _settle(attachment, how, tag)

    async def _dead_letter(
        self, attachment: _Attachment, tag: int, body: bytes
    ) -> None:
        failed = topology.failed(self.queue)
        try:
            declared = attachment.live.failed_declared
            if failed not in declared:
                # Not on the consumer's channel, which may be shared.
                await self._broker.declare_queue(failed)
                declared.add(failed)
            await self._broker._publish_body(failed, body)
        except Exception as e:
            _log.warn(
                "Could not move a message to {failed}: {error}; requeueing it",
                failed=failed,
                error=describe(e),
            )
            _settle(attachment, Settlement.REQUEUE, tag)
            return
        _settle(attachment, Settlement.ACK, tag)

    # -- stopping ------------------------------------------------------------

    async def stop(self) -> None:
        """Cancel the consumer, wait for running handlers, close the channel."""
        if self._stop_done is None:
            self._stop_done = ensureDeferred(self._stop())
        done: Deferred[None] = Deferred()
        self._stop_done.addBoth(chain_to, done)
        await done

    async def _stop(self) -> None:
        self._stopped = True
        self._broker._consumers.pop(self, None)
        self._cancel_retry()
        if self._attaching is not None:
            await quiet(self._attaching)
        attachment = self._attachment
        if attachment is not None and attachment.usable:
            await quiet(
                self._broker._bounded(
                    attachment.channel.basic_cancel(attachment.consumer_tag),
                    "basic.cancel",
                )
            )
        await self._handlers.idle()
        if attachment is not None:
            closing = attachment.leave()
            if closing is not None:
                await quiet(self._broker._bounded(closing, "channel close"))
        self._attachment = None


def _settle(attachment: _Attachment, how: Settlement, tag: int) -> None:
    """Ack (or nack with requeue) on the channel that delivered the message."""
    if not attachment.usable:
        return  # the broker requeues it when the channel goes away
    try:
        if how is Settlement.ACK:
            attachment.channel.basic_ack(tag)
        else:
            attachment.channel.basic_nack(tag, requeue=True)
    except Exception as e:
        _log.debug("could not {how} {tag}: {error}", how=how, tag=tag, error=e)
