"""One AMQP channel of :class:`~junebug.amqp.client.AmqpClient`.

:class:`AmqpChannel` has what :mod:`junebug.amqp.rabbitmq` needs:
declarations, ``basic.qos``, consumers called back per delivery,
``basic.get``, acks and nacks, and publishing in confirm mode, where each
publish returns a Deferred fired by the broker's ``basic.ack`` (or failed by
its ``basic.nack``, or by :class:`~junebug.errors.ConfirmTimeout`).

A channel has one synchronous method on the wire at a time; requests made
meanwhile wait, in order, and each is written when the reply to the one
before it has come.  RabbitMQ does not answer methods sent back to back in
order: a ``basic.consume-ok`` comes from the queue's process, so the
``basic.qos-ok`` of a ``basic.qos`` sent after the consume can overtake it
(seen on RabbitMQ 3.10 with a channel shared by consumers attaching at once).
pika, too, holds a channel's next synchronous call until the reply comes.
Asynchronous methods (publishes, acks, nacks) are written at once.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger

from junebug.amqp import frames as f
from junebug.amqp.frames import FrameError, Method
from junebug.errors import (
    AmqpError,
    ChannelClosedError,
    ConfirmTimeout,
    PublishRefused,
)

if TYPE_CHECKING:
    from junebug.amqp.client import AmqpClient

__all__ = ["AmqpChannel", "CancelCallback", "Delivery", "DeliveryCallback"]

_log = Logger(namespace="junebug.amqp.client")


class Delivery:
    """A message from ``basic.deliver`` or ``basic.get-ok``."""

    __slots__ = (
        "body",
        "delivery_tag",
        "exchange",
        "raw_properties",
        "redelivered",
        "routing_key",
    )

    def __init__(
        self,
        delivery_tag: int,
        redelivered: bool,
        exchange: str,
        routing_key: str,
        raw_properties: bytes,
        body: bytes,
    ) -> None:
        self.delivery_tag = delivery_tag
        self.redelivered = redelivered
        self.exchange = exchange
        self.routing_key = routing_key
        self.raw_properties = raw_properties
        self.body = body

    def properties(self) -> dict[str, Any]:
        """The message's basic properties (``content_type``, ...)."""
        return f.decode_properties(self.raw_properties)


DeliveryCallback = Callable[[Delivery], object]
CancelCallback = Callable[[AmqpError], object]


class _Content:
    """A content-bearing method whose header and body are still arriving."""

    __slots__ = ("chunks", "method", "properties", "received", "size")

    def __init__(self, method: Method) -> None:
        self.method = method
        self.size = -1
        self.received = 0
        self.properties = b""
        self.chunks: list[bytes] = []


class _Rpc:
    """A synchronous request: the replies it accepts, what fires with the
    reply, and its frame until it is written."""

    __slots__ = ("confirming", "data", "deferred", "extra", "replies")

    def __init__(
        self,
        replies: frozenset[tuple[int, int]],
        deferred: Deferred[Any],
        extra: Any,
        data: bytes,
        confirming: bool,
    ) -> None:
        self.replies = replies
        self.deferred = deferred
        self.extra = extra
        self.data = data
        self.confirming = confirming


class AmqpChannel:
    """One AMQP channel of an :class:`AmqpClient`."""

    def __init__(self, client: AmqpClient, number: int) -> None:
        self.client = client
        self.number = number
        self.is_open = False
        #: Fires (never fails) with the reason once the channel is closed.
        self.on_closed: Deferred[AmqpError] = Deferred()
        #: Requests in order: the first is on the wire, the others wait.
        self._rpcs: deque[_Rpc] = deque()
        self._confirming = False
        self._next_tag = 0
        self._unconfirmed: dict[int, Deferred[None]] = {}
        #: Seconds a publish may wait for its confirm before it fails with
        #: :class:`ConfirmTimeout` (``None``: no limit).
        self.confirm_timeout: float | None = None
        self._sent_at: dict[int, float] = {}
        self._confirm_timer: IDelayedCall | None = None
        self._consumers: dict[str, tuple[DeliveryCallback, CancelCallback]] = {}
        self._content: _Content | None = None
        self._closing = False
        self._awaiting_close_ok = False
        self._publish_cache: dict[tuple[str, str], bytes] = {}

    def __repr__(self) -> str:
        return f"<AmqpChannel {self.number} {'open' if self.is_open else 'closed'}>"

    # -- requests ------------------------------------------------------------

    def _call(
        self,
        data: bytes,
        *replies: tuple[int, int],
        extra: Any = None,
        confirming: bool = False,
    ) -> Deferred[Any]:
        if not self.is_open or self._closing:
            return fail(ChannelClosedError(f"channel {self.number} is closed"))
        rpc = _Rpc(frozenset(replies), Deferred(), extra, data, confirming)
        self._rpcs.append(rpc)
        if len(self._rpcs) == 1:
            self._send(rpc)
        return rpc.deferred

    def _send(self, rpc: _Rpc) -> None:
        self.client._write(rpc.data)
        rpc.data = b""
        if rpc.confirming:
            # Publishes written from now on are the ones the broker confirms.
            self._confirming = True

    def exchange_declare(
        self, exchange: str, exchange_type: str = "direct", durable: bool = False
    ) -> Deferred[Any]:
        return self._call(
            f.method(
                self.number,
                f.EXCHANGE_DECLARE,
                exchange=exchange,
                type=exchange_type,
                durable=durable,
            ),
            f.EXCHANGE_DECLARE_OK,
        )

    def queue_declare(
        self,
        queue: str,
        durable: bool = False,
        passive: bool = False,
        arguments: dict[str, Any] | None = None,
    ) -> Deferred[Method]:
        return self._call(
            f.method(
                self.number,
                f.QUEUE_DECLARE,
                queue=queue,
                durable=durable,
                passive=passive,
                arguments=arguments,
            ),
            f.QUEUE_DECLARE_OK,
        )

    def queue_bind(self, queue: str, exchange: str, routing_key: str) -> Deferred[Any]:
        return self._call(
            f.method(
                self.number,
                f.QUEUE_BIND,
                queue=queue,
                exchange=exchange,
                routing_key=routing_key,
            ),
            f.QUEUE_BIND_OK,
        )

    def queue_delete(self, queue: str) -> Deferred[Any]:
        return self._call(
            f.method(self.number, f.QUEUE_DELETE, queue=queue), f.QUEUE_DELETE_OK
        )

    def queue_purge(self, queue: str) -> Deferred[Any]:
        return self._call(
            f.method(self.number, f.QUEUE_PURGE, queue=queue), f.QUEUE_PURGE_OK
        )

    def basic_qos(self, prefetch_count: int) -> Deferred[Any]:
        return self._call(
            f.method(self.number, f.BASIC_QOS, prefetch_count=prefetch_count),
            f.BASIC_QOS_OK,
        )

    def confirm_select(self) -> Deferred[Any]:
        return self._call(
            f.method(self.number, f.CONFIRM_SELECT),
            f.CONFIRM_SELECT_OK,
            confirming=True,
        )

    def basic_consume(
        self,
        queue: str,
        on_delivery: DeliveryCallback,
        on_cancel: CancelCallback,
    ) -> Deferred[str]:
        """Consume ``queue`` (acks required); fires with the consumer tag.

        ``on_delivery`` is called for each message; ``on_cancel`` once, with
        the reason, when the broker cancels the consumer or the channel
        closes (not after :meth:`basic_cancel`).
        """
        return self._call(
            f.method(self.number, f.BASIC_CONSUME, queue=queue),
            f.BASIC_CONSUME_OK,
            extra=(on_delivery, on_cancel),
        )

    def basic_cancel(self, consumer_tag: str) -> Deferred[Any]:
        return self._call(
            f.method(self.number, f.BASIC_CANCEL, consumer_tag=consumer_tag),
            f.BASIC_CANCEL_OK,
        )

    def basic_get(self, queue: str) -> Deferred[Delivery | None]:
        """The next message of ``queue`` (to be acked), or ``None``."""
        return self._call(
            f.method(self.number, f.BASIC_GET, queue=queue),
            f.BASIC_GET_OK,
            f.BASIC_GET_EMPTY,
        )

    def basic_ack(self, delivery_tag: int) -> None:
        if self.is_open and not self._closing:
            self.client._write(
                f.method(self.number, f.BASIC_ACK, delivery_tag=delivery_tag)
            )

    def basic_nack(self, delivery_tag: int, requeue: bool = True) -> None:
        if self.is_open and not self._closing:
            self.client._write(
                f.method(
                    self.number,
                    f.BASIC_NACK,
                    delivery_tag=delivery_tag,
                    requeue=requeue,
                )
            )

    def publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        properties: bytes,
    ) -> Deferred[None]:
        """Publish ``body``; in confirm mode the Deferred fires on the
        broker's ack (:class:`PublishRefused` on a nack), else at once.

        ``properties`` is a content header's property part, e.g. from
        :func:`junebug.amqp.frames.publish_properties`.
        """
        if not self.is_open or self._closing:
            return fail(ChannelClosedError(f"channel {self.number} is closed"))
        key = (exchange, routing_key)
        payload = self._publish_cache.get(key)
        if payload is None:
            if len(self._publish_cache) >= 4096:
                self._publish_cache.clear()
            payload = self._publish_cache[key] = f.publish_method_payload(
                exchange, routing_key
            )
        self.client._write(
            f.publish_frames(
                self.number, payload, properties, body, self.client.frame_max
            )
        )
        if not self._confirming:
            return succeed(None)
        self._next_tag += 1
        d: Deferred[None] = Deferred()
        self._unconfirmed[self._next_tag] = d
        if self.confirm_timeout is not None:
            self._sent_at[self._next_tag] = self.client.reactor.seconds()
            if self._confirm_timer is None:
                self._confirm_timer = self.client.reactor.callLater(
                    self.confirm_timeout, self._expire_confirms
                )
        return d

    def _expire_confirms(self) -> None:
        """Fail publishes unconfirmed for ``confirm_timeout`` seconds; one
        timer per channel, re-armed for the oldest one left."""
        self._confirm_timer = None
        timeout = self.confirm_timeout
        if timeout is None or not self._sent_at:
            return
        now = self.client.reactor.seconds()
        sent_at = self._sent_at
        for tag in list(sent_at):
            age = now - sent_at[tag]
            if age < timeout:
                self._confirm_timer = self.client.reactor.callLater(
                    timeout - age, self._expire_confirms
                )
                return
            del sent_at[tag]
            d = self._unconfirmed.pop(tag, None)
            if d is not None:
                d.errback(
                    ConfirmTimeout(f"no confirm from the broker after {timeout:g}s")
                )

    def close(self) -> Deferred[AmqpError]:
        """Close the channel; fires (like :attr:`on_closed`) once it is."""
        if self.is_open and not self._closing and self.client.connected:
            self._closing = True
            self.client._write(
                f.method(self.number, f.CHANNEL_CLOSE, reply_code=200, reply_text="OK")
            )
        done: Deferred[AmqpError] = Deferred()
        self.on_closed.addBoth(relay, done)
        return done

    # -- frames from the broker -----------------------------------------------

    def _method(self, m: Method) -> None:
        ids = m.ids
        if ids in f.CONTENT_METHODS:
            self._content = _Content(m)
            return
        if ids == f.BASIC_ACK:
            self._confirmed(m.args["delivery_tag"], m.args["multiple"], None)
        elif ids == f.BASIC_NACK:
            self._confirmed(
                m.args["delivery_tag"],
                m.args["multiple"],
                PublishRefused("RabbitMQ refused (nacked) a message"),
            )
        elif ids == f.CHANNEL_CLOSE:
            self.client._write(f.method(self.number, f.CHANNEL_CLOSE_OK))
            text = f"{m.args['reply_code']} {m.args['reply_text']}"
            # If our own close crossed the broker's, its close-ok is still to
            # come: keep the number taken until it does.
            crossed = self._closing
            self._closed(ChannelClosedError(text, m.args["reply_code"]), not crossed)
            self._awaiting_close_ok = crossed
        elif ids == f.CHANNEL_CLOSE_OK:
            if self._awaiting_close_ok:
                self._awaiting_close_ok = False
                self.client._forget(self)
                return
            self._closed(ChannelClosedError(f"channel {self.number} was closed"))
        elif ids == f.BASIC_CANCEL:
            # The broker cancelled a consumer (its queue was deleted, ...).
            entry = self._consumers.pop(m.args["consumer_tag"], None)
            if entry is not None:
                try:
                    entry[1](AmqpError("the broker cancelled the consumer"))
                except Exception:
                    _log.failure("AMQP cancel callback failed")
        elif ids == f.CHANNEL_FLOW:
            self.client._write(
                f.method(self.number, f.CHANNEL_FLOW_OK, active=m.args["active"])
            )
        else:
            self._reply(m, None)

    def _reply(self, m: Method, delivery: Delivery | None) -> None:
        if self._closing:
            return
        rpcs = self._rpcs
        if not rpcs or m.ids not in rpcs[0].replies:
            raise FrameError(f"unexpected {m.name} on channel {self.number}")
        rpc = rpcs.popleft()
        if rpcs:
            self._send(rpcs[0])
        d, extra = rpc.deferred, rpc.extra
        if m.ids == f.BASIC_CONSUME_OK:
            self._consumers[m.args["consumer_tag"]] = extra
            d.callback(m.args["consumer_tag"])
        elif m.ids == f.BASIC_CANCEL_OK:
            self._consumers.pop(m.args["consumer_tag"], None)
            d.callback(m)
        elif m.ids == f.BASIC_GET_EMPTY:
            d.callback(None)
        elif m.ids == f.BASIC_GET_OK:
            d.callback(delivery)
        else:
            d.callback(m)

    def _header(self, payload: bytes) -> None:
        content = self._content
        if content is None or content.size >= 0:
            raise FrameError(f"unexpected content header on channel {self.number}")
        content.size, content.properties = f.decode_content_header(payload)
        if content.size == 0:
            self._deliver(content, b"")

    def _body(self, payload: bytes) -> None:
        content = self._content
        if content is None or content.size < 0:
            raise FrameError(f"unexpected content body on channel {self.number}")
        content.received += len(payload)
        if content.received > content.size:
            raise FrameError("a message body longer than its header said")
        if content.received == content.size:
            if content.chunks:
                content.chunks.append(payload)
                payload = b"".join(content.chunks)
            self._deliver(content, payload)
        else:
            content.chunks.append(payload)

    def _deliver(self, content: _Content, body: bytes) -> None:
        self._content = None
        args = content.method.args
        delivery = Delivery(
            args.get("delivery_tag", 0),
            args.get("redelivered", False),
            args["exchange"],
            args["routing_key"],
            content.properties,
            body,
        )
        ids = content.method.ids
        if ids == f.BASIC_DELIVER:
            entry = self._consumers.get(args["consumer_tag"])
            if entry is None:
                return  # cancelled: the broker requeues it when the channel goes
            try:
                entry[0](delivery)
            except Exception:
                _log.failure("AMQP delivery callback failed")
        elif ids == f.BASIC_GET_OK:
            self._reply(content.method, delivery)
        else:
            _log.warn(
                "RabbitMQ returned a message to {key}: {code} {text}",
                key=args["routing_key"],
                code=args["reply_code"],
                text=args["reply_text"],
            )

    def _confirmed(self, tag: int, multiple: bool, error: AmqpError | None) -> None:
        pending = self._unconfirmed
        if multiple:
            done = [t for t in pending if t <= tag]
        else:
            done = [tag] if tag in pending else []
        sent_at = self._sent_at
        for t in done:
            d = pending.pop(t)
            sent_at.pop(t, None)
            if error is None:
                d.callback(None)
            else:
                d.errback(error)

    def _closed(self, reason: AmqpError, forget: bool = True) -> None:
        if not self.is_open and self.on_closed.called:
            return
        self.is_open = False
        self._closing = False
        if forget:
            self.client._forget(self)
        rpcs, self._rpcs = self._rpcs, deque()
        unconfirmed, self._unconfirmed = self._unconfirmed, {}
        self._sent_at = {}
        if self._confirm_timer is not None and self._confirm_timer.active():
            self._confirm_timer.cancel()
        self._confirm_timer = None
        consumers, self._consumers = self._consumers, {}
        for rpc in rpcs:
            rpc.deferred.errback(reason)
        for d in unconfirmed.values():
            d.errback(reason)
        for _on_delivery, on_cancel in consumers.values():
            try:
                on_cancel(reason)
            except Exception:
                _log.failure("AMQP cancel callback failed")
        if not self.on_closed.called:
            self.on_closed.callback(reason)


def relay(result: Any, d: Deferred[Any]) -> Any:
    if not d.called:
        d.callback(result)
    return result
