"""One running channel: its transport, its forwarder and its status receiver.

Each part is wired to the broker with the original's routing keys: the
transport consumes ``<id>.outbound`` and publishes ``<id>.inbound``,
``<id>.event`` and ``<id>.status.status``; the forwarder consumes inbound and
events (and ``<amqp_queue>.outbound`` when set); the status receiver consumes
status events.  A transport that fails to start leaves the channel ``down``
but registered, so it can be inspected, updated, restarted or deleted.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs
from twisted.internet.defer import Deferred, ensureDeferred

from junebug.amqp import topology
from junebug.amqp.broker import Broker, Consumer, MessageHandler
from junebug.channel_logs import owner_logger
from junebug.channels.forwarding import Forwarder, JsonPoster
from junebug.channels.properties import ChannelProperties, has_destination
from junebug.channels.status import StatusReceiver
from junebug.errors import RETRY_LATER, TemporaryFailure
from junebug.messages import (
    AnyMessage,
    Event,
    Message,
    StatusEvent,
    UserMessage,
    as_user_message,
    status_event,
)
from junebug.metrics.families import JunebugMetrics
from junebug.reactors import TimeTCPReactor
from junebug.stores.backend import KeyValueBackend
from junebug.stores.messages import MessageStore
from junebug.stores.rates import RateStore
from junebug.stores.status import StatusStore
from junebug.transports.interface import Transport, TransportContext
from junebug.transports.registry import TransportRegistry

#: How long (seconds) the MO and events of a channel without ``mo_url`` and
#: ``amqp_queue`` wait in ``<cid>.inbound`` / ``<cid>.event`` for a router to
#: take them; older ones are dropped, so an unrouted channel cannot pile up
#: messages for ever.
ROUTER_WAIT_TTL = 24 * 60 * 60


@attrs.define
class ChannelDependencies:
    """What every channel shares with the rest of Junebug."""

    reactor: TimeTCPReactor
    broker: Broker
    backend: KeyValueBackend
    messages: MessageStore
    statuses: StatusStore
    rates: RateStore
    http: JsonPoster
    transports: TransportRegistry
    prefetch: int = 20
    #: Posts MO messages (retried within the inbound TTL); ``http`` if unset.
    mo_http: JsonPoster | None = None
    metrics: JunebugMetrics = attrs.field(factory=JunebugMetrics)


class Channel:
    """A channel's running parts, started and stopped together."""

    def __init__(
        self,
        channel_id: str,
        properties: ChannelProperties,
        deps: ChannelDependencies,
        may_send: Callable[[], bool] = lambda: True,
    ) -> None:
        self.id = channel_id
        self.properties = properties
        self._deps = deps
        #: Checked before each outbound message reaches the transport: False
        #: once this process's lease on the channel ran out (fencing).
        self._may_send = may_send
        self.log = owner_logger("junebug.channel", "channel_id", channel_id)
        self.transport: Transport | None = None
        self._consumers: list[Consumer] = []
        self._outbound: Consumer | None = None
        self.start_error: str | None = None
        self.transport_error: str | None = None
        self.running = False
        #: True while this process runs (or tried to start) the transport.
        self.owned = False
        #: The change count the properties are from (see the cluster).
        self.revision = 0

    async def _publish(self, routing_key: str, message: AnyMessage) -> None:
        await self._deps.broker.publish(routing_key, message)

    async def _publish_for_consumer(
        self, routing_key: str, message: AnyMessage
    ) -> None:
        """Publish MO or an event; without a destination it waits for a router
        at most :data:`ROUTER_WAIT_TTL` seconds."""
        if has_destination(self.properties):
            await self._deps.broker.publish(routing_key, message)
        else:
            await self._deps.broker.publish(routing_key, message, ttl=ROUTER_WAIT_TTL)

    def _context(self) -> TransportContext:
        cid = self.id
        metrics = self._deps.metrics.channel(cid, str(self.properties.get("type")))
        received = metrics.received

        async def publish_inbound(msg: UserMessage) -> None:
            msg.setdefault("transport_name", cid)
            received.inc()
            await self._publish_for_consumer(topology.inbound(cid), msg)

        async def publish_event(msg: Event) -> None:
            msg.setdefault("transport_name", cid)
            metrics.event(str(msg.get("event_type")))
            await self._publish_for_consumer(topology.event(cid), msg)

        async def publish_status(msg: StatusEvent) -> None:
            msg.setdefault("transport_name", cid)
            await self._publish(topology.status(cid), msg)

        return TransportContext(
            channel_id=cid,
            reactor=self._deps.reactor,
            publish_inbound=publish_inbound,
            publish_event=publish_event,
            publish_status=publish_status,
            store=self._deps.backend,
            log=self.log,
            metrics=metrics,
        )

    def forwarder(self) -> Forwarder:
        props = self.properties
        return Forwarder(
            owner_id=self.id,
            broker=self._deps.broker,
            messages=self._deps.messages,
            rates=self._deps.rates,
            http=self._deps.http,
            log=self.log,
            mo_url=props.get("mo_url"),
            mo_url_auth_token=props.get("mo_url_auth_token"),
            amqp_queue=props.get("amqp_queue"),
            mo_http=self._deps.mo_http,
        )

    async def _consume(self, queue: str, handler: MessageHandler) -> None:
        consumer = await self._deps.broker.consume(
            queue, handler, prefetch=self._deps.prefetch
        )
        self._consumers.append(consumer)

    async def start(self, with_transport: bool = True) -> None:
        """Start the status receiver, the forwarder, then (unless another
        process runs it) the transport."""
        deps = self._deps
        props = self.properties
        receiver = StatusReceiver(
            channel_id=self.id,
            statuses=deps.statuses,
            http=deps.http,
            log=self.log,
            status_url=props.get("status_url"),
        )
        await self._consume(topology.status(self.id), receiver.handle_status)
        if has_destination(props):
            forwarder = self.forwarder()
            await self._consume(topology.inbound(self.id), forwarder.handle_inbound)
            await self._consume(topology.event(self.id), forwarder.handle_event)
            queue = props.get("amqp_queue")
            if queue:

                async def relay(message: Message) -> None:
                    await forwarder.relay_outbound(message, self.id)

                await self._consume(topology.outbound(queue), relay)
        else:
            # Declared so messages wait for a router rather than being dropped
            # (for ROUTER_WAIT_TTL at most: they are published with that ttl).
            await deps.broker.declare_queue(topology.inbound(self.id))
            await deps.broker.declare_queue(topology.event(self.id))
        # Declared first, so MT accepted while the transport is down waits.
        await deps.broker.declare_queue(topology.outbound(self.id))
        if with_transport:
            await self.start_transport()
        self.running = True
        self.log.info("Channel {channel_id} started", channel_id=self.id)

    async def start_transport(self) -> None:
        """Start the transport and its outbound consumer; a transport that
        fails to start leaves the channel ``down`` (this never raises for it)."""
        deps = self._deps
        props = self.properties
        self.owned = True
        self.start_error = None
        try:
            cls = deps.transports.resolve(props.get("type"))
            config = deps.transports.validate(props.get("type"), props.get("config"))
            transport = cls(self._context(), config)
            await transport.start()
        except Exception as exc:
            self.start_error = f"{type(exc).__name__}: {exc}"
            self.log.failure(
                "Channel {channel_id} transport failed to start",
                channel_id=self.id,
            )
            await self._record_down(self.start_error)
        else:
            self.transport = transport
            await deps.statuses.clear(self.id, "transport")
            self._outbound = await deps.broker.consume(
                topology.outbound(self.id),
                self._handle_outbound,
                prefetch=deps.prefetch,
            )

    async def stop_transport(self) -> None:
        """Stop the outbound consumer and the transport; the forwarder and
        the status receiver go on (another process runs the transport now)."""
        self.owned = False
        self.start_error = None
        outbound, self._outbound = self._outbound, None
        stopping = None if outbound is None else ensureDeferred(outbound.stop())
        await self._stop_transport()
        if outbound is not None and stopping is not None:
            await self._await_stop(outbound, stopping)

    async def _record_down(self, reason: str, kind: str = "start_failed") -> None:
        status = status_event(
            component="transport",
            status="down",
            type=kind,
            message=reason,
            transport_name=self.id,
        )
        try:
            await self._deps.statuses.save(self.id, status)
        except Exception:
            self.log.failure("Could not record channel status")

    async def _handle_outbound(self, message: Message) -> None:
        transport = self.transport
        if transport is None:
            raise TemporaryFailure(f"channel {self.id} has no running transport")
        if not self._may_send():
            raise TemporaryFailure(
                f"channel {self.id}: this process's lease ran out; not sending"
            )
        try:
            await transport.handle_outbound(as_user_message(message))
        except RETRY_LATER:
            raise  # not the transport's fault: the message is tried again
        except Exception as exc:
            # A crashing transport shows as down until it sends again.
            self.transport_error = f"{type(exc).__name__}: {exc}"
            await self._record_down(self.transport_error, "transport_error")
            raise
        if self.transport_error is not None:
            self.transport_error = None
            await self._deps.statuses.clear(self.id, "transport")

    async def stop(self) -> None:
        """Stop every part; never fails, whatever state the channel is in."""
        # Cancel every consumer first (no new deliveries), then stop the
        # transport so that handlers still waiting on it give up and requeue,
        # then wait for the consumers to finish.
        consumers, self._consumers = self._consumers, []
        if self._outbound is not None:
            consumers.append(self._outbound)
            self._outbound = None
        stopping = [ensureDeferred(consumer.stop()) for consumer in consumers]
        await self._stop_transport()
        for consumer, done in zip(consumers, stopping, strict=True):
            await self._await_stop(consumer, done)
        if self.running:
            self.log.info("Channel {channel_id} stopped", channel_id=self.id)
        self.running = False

    async def _stop_transport(self) -> None:
        transport, self.transport = self.transport, None
        if transport is not None:
            try:
                await transport.stop()
            except Exception:
                self.log.failure(
                    "Error stopping transport of channel {channel_id}",
                    channel_id=self.id,
                )

    async def _await_stop(self, consumer: Consumer, done: Deferred[None]) -> None:
        try:
            await done
        except Exception:
            self.log.failure("Error stopping consumer of {queue}", queue=consumer.queue)
