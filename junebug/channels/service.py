"""One running channel: its transport, its forwarder and its status receiver.

Each part is wired to the broker with the original's routing keys: the
transport consumes ``<id>.outbound`` and publishes ``<id>.inbound``,
``<id>.event`` and ``<id>.status.status``; the forwarder consumes inbound and
events (and ``<amqp_queue>.outbound`` when set); the status receiver consumes
status events.  Every MT waits for the channel's rate limit (if it has one,
:mod:`junebug.channels.rate_limit`) before it reaches the transport, unless
the transport spends the budget itself, per PDU.  A transport that fails to
start leaves the channel ``down`` but registered, so it can be inspected,
updated, restarted or deleted.

MT waits in one queue per priority (``<id>.outbound`` is priority 1, the one
vumi applications publish to; ``<id>.outbound.p2`` … ``.p5``), each consumed
with its own prefetch: a priority-5 message waits for at most the messages
already prefetched or in flight, never for the backlog.  A paused channel
consumes none of them (:mod:`junebug.channels.traffic`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import attrs
from twisted.internet.defer import DeferredLock, ensureDeferred, gatherResults

from junebug.amqp import topology
from junebug.amqp.broker import Broker, Consumer, MessageHandler
from junebug.channel_logs import owner_logger
from junebug.channels import handoff
from junebug.channels.cancelling import Canceller
from junebug.channels.forwarding import Forwarder, JsonPoster
from junebug.channels.properties import ChannelProperties, has_destination
from junebug.channels.queues import SENT_RATE
from junebug.channels.rate_limit import RateLimit, SendBudget
from junebug.channels.status import StatusReceiver
from junebug.channels.traffic import ChannelPaused, OutboundTraffic, PauseWatch
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
from junebug.stored_logs import StoredLogs
from junebug.stores.backend import KeyValueBackend
from junebug.stores.messages import MessageStore
from junebug.stores.rates import RateStore
from junebug.stores.status import StatusStore
from junebug.stores.traffic import TrafficStore
from junebug.transports.interface import Transport, TransportContext
from junebug.transports.registry import TransportRegistry
from junebug.transports.toolkit import BackgroundTasks, StatusReporter

#: The status component that says whether the rate limit holds messages back.
RATE_LIMIT_COMPONENT = "rate_limit"

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
    #: Seconds a send stays counted beyond ``rate_limit_window``.
    rate_limit_margin: float = 0.0
    #: Seconds the owner waits to hand an event or MO to the channel's
    #: forwarder before publishing it (0: always publish); see handoff.
    handoff_timeout: float = handoff.DEFAULT_TIMEOUT
    traffic: TrafficStore = attrs.field(
        default=attrs.Factory(lambda deps: TrafficStore(deps.backend), takes_self=True)
    )

    @property
    def canceller(self) -> Canceller:
        return Canceller(self.broker, self.messages, self.traffic)

    #: Where channel logs and message logs are stored (None: files only).
    stored_logs: StoredLogs | None = None


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
        self._properties = properties
        self._deps = deps
        #: Checked before each outbound message reaches the transport: False
        #: once this process's lease on the channel ran out (fencing).
        self._may_send = may_send
        #: True while this process runs (or tried to start) the transport.
        self.owned = False
        #: The change count the properties are from (see the cluster).
        self.revision = 0
        #: The short ways for the transport's events and MO (None: the channel
        #: has no forwarder, they wait for a router in the queue).
        self.event_handoff: handoff.HandOff | None = None
        self.mo_handoff: handoff.HandOff | None = None
        self.log = owner_logger("junebug.channel", "channel_id", channel_id)
        self._tasks = BackgroundTasks(deps.reactor, self.log)
        self._statuses = StatusReporter(
            channel_id,
            lambda status: self._publish(topology.status(channel_id), status),
            self.log,
            self._tasks,
        )
        self.budget = SendBudget(
            channel_id,
            deps.backend,
            deps.reactor,
            lambda: RateLimit.of(self._properties),
            margin=deps.rate_limit_margin,
            on_held=self._held_back,
            wait_seconds=deps.metrics.rate_limit_wait.labels(channel_id),
        )
        self.transport: Transport | None = None
        self._consumers: list[Consumer] = []
        #: Consumers of the outbound queues (none while paused).
        self._outbound: list[Consumer] = []
        self.traffic = OutboundTraffic(
            channel_id, deps.traffic, deps.messages, deps.canceller, deps.reactor
        )
        self._watch = PauseWatch(self.traffic, deps.reactor, self.resume)
        self._switching = DeferredLock()
        #: Set by stop(): no pause or resume may start anything after it.
        self._stopping = False
        self.start_error: str | None = None
        self.transport_error: str | None = None
        self.running = False

    @property
    def properties(self) -> ChannelProperties:
        return self._properties

    @properties.setter
    def properties(self, properties: ChannelProperties) -> None:
        """New properties (without a restart): a new rate limit applies at once."""
        self._properties = properties
        self.budget.changed()

    def _held_back(self, held: bool, limit: RateLimit | None) -> None:
        described = limit.describe() if limit else "none"
        if held:
            self._statuses.report(
                RATE_LIMIT_COMPONENT,
                "degraded",
                "held_back",
                f"Held back by rate_limit_count ({described})",
                details={"limit": limit.view() if limit else None},
            )
        else:
            self._statuses.report(
                RATE_LIMIT_COMPONENT,
                "ok",
                "not_held_back",
                f"Not held back by rate_limit_count ({described})",
            )

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
        stored = self._deps.stored_logs

        async def publish_inbound(msg: UserMessage) -> None:
            msg.setdefault("transport_name", cid)
            received.inc()
            mo_handoff = self.mo_handoff
            if mo_handoff is not None and await mo_handoff.hand_on(msg):
                return
            await self._publish_for_consumer(topology.inbound(cid), msg)

        async def publish_event(msg: Event) -> None:
            msg.setdefault("transport_name", cid)
            metrics.event(str(msg.get("event_type")))
            event_handoff = self.event_handoff
            if event_handoff is not None and await event_handoff.hand_on(msg):
                return
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
            send_budget=self.budget.spend,
            record=None if stored is None else stored.recorder(cid),
        )

    def forwarder(self) -> Forwarder:
        props = self.properties
        stored = self._deps.stored_logs
        return Forwarder(
            owner_id=self.id,
            broker=self._deps.broker,
            messages=self._deps.messages,
            rates=self._deps.rates,
            http=self._deps.http,
            log=self.log,
            mo_url=props.get("mo_url"),
            mo_url_auth_token=props.get("mo_url_auth_token"),
            mo_format=props.get("mo_format") or "junebug",
            amqp_queue=props.get("amqp_queue"),
            mo_http=self._deps.mo_http,
            record=None if stored is None else stored.recorder(self.id),
        )

    async def _consume_all(
        self, queues: list[tuple[str, MessageHandler]], into: list[Consumer]
    ) -> None:
        """Start a consumer on each queue at once (their round trips overlap:
        what makes a thousand channels start in seconds), each added to
        ``into`` as it is set up; the first error is raised once all are
        settled, so ``into`` holds every consumer to stop."""
        broker, prefetch = self._deps.broker, self._deps.prefetch

        async def one(queue: str, handler: MessageHandler) -> None:
            into.append(await broker.consume(queue, handler, prefetch=prefetch))

        await _settled([one(queue, handler) for queue, handler in queues])

    async def start(self, with_transport: bool = True) -> None:
        """Start the status receiver, the forwarder, then (unless another
        process runs it) the transport."""
        self._stopping = False
        deps = self._deps
        props = self.properties
        receiver = StatusReceiver(
            channel_id=self.id,
            statuses=deps.statuses,
            http=deps.http,
            log=self.log,
            status_url=props.get("status_url"),
        )
        consumed: list[tuple[str, MessageHandler]] = [
            (topology.status(self.id), receiver.handle_status)
        ]
        declared: list[str] = []
        self.event_handoff = self.mo_handoff = None
        if has_destination(props):
            forwarder = self.forwarder()
            timeout = deps.handoff_timeout
            self.event_handoff = handoff.HandOff(
                forwarder.handle_event,
                deps.reactor,
                self.log,
                timeout,
                metrics=deps.metrics,
            )
            self.mo_handoff = handoff.HandOff(
                forwarder.handle_inbound,
                deps.reactor,
                self.log,
                timeout,
                kind="mo",
                metrics=deps.metrics,
            )
            consumed.append((topology.inbound(self.id), forwarder.handle_inbound))
            consumed.append((topology.event(self.id), forwarder.handle_event))
            queue = props.get("amqp_queue")
            if queue:

                async def relay(message: Message) -> None:
                    await forwarder.relay_outbound(message, self.id)

                consumed.append((topology.outbound(queue), relay))
        else:
            # Declared so messages wait for a router rather than being dropped
            # (for ROUTER_WAIT_TTL at most: they are published with that ttl).
            declared = [topology.inbound(self.id), topology.event(self.id)]
        # Declared before the transport starts, so MT accepted while it is
        # down waits.
        declared.extend(topology.outbound_at(self.id, p) for p in topology.PRIORITIES)
        await _settled(
            [
                self._consume_all(consumed, self._consumers),
                deps.broker.declare_queues(declared),
                deps.statuses.clear(self.id, RATE_LIMIT_COMPONENT),
            ]
        )
        if with_transport:
            await self.start_transport()
        self.running = True
        self.log.info("Channel {channel_id} started", channel_id=self.id)

    async def start_transport(self) -> None:
        """Start the transport and its outbound consumers (unless paused); a
        transport that fails to start leaves the channel ``down`` (this never
        raises for it)."""
        deps = self._deps
        props = self.properties
        self._stopping = False
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
            self.traffic.forget()
            if (await self.traffic.state()).paused:
                self._watch.start()
            else:
                await self._consume_outbound()

    async def stop_transport(self) -> None:
        """Stop the outbound consumers and the transport; the forwarder and
        the status receiver go on (another process runs the transport now)."""
        async with self._switching:
            self.owned = False
            self.start_error = None
            self._watch.stop()
            outbound, self._outbound = self._outbound, []
            stopping = [ensureDeferred(consumer.stop()) for consumer in outbound]
            # Sends waiting for budget would hold the stop up to a window.
            self.budget.give_back()
            await self._stop_transport()
            for consumer, done in zip(outbound, stopping, strict=True):
                try:
                    await done
                except Exception:
                    self.log.failure(
                        "Error stopping consumer of {queue}", queue=consumer.queue
                    )

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

    async def _consume_outbound(self) -> None:
        queues: list[tuple[str, MessageHandler]] = []
        for priority in reversed(topology.PRIORITIES):

            async def handle(message: Message, priority: int = priority) -> None:
                await self._handle_outbound(priority, message)

            queues.append((topology.outbound_at(self.id, priority), handle))
        await self._consume_all(queues, self._outbound)

    async def _stop_outbound(self) -> None:
        consumers, self._outbound = self._outbound, []
        for consumer in consumers:
            try:
                await consumer.stop()
            except Exception:
                self.log.failure(
                    "Error stopping consumer of {queue}", queue=consumer.queue
                )

    @property
    def paused(self) -> bool:
        """Whether this process holds the channel's MT (it is paused)."""
        return self._watch.running

    async def pause(self) -> None:
        """Stop sending: the outbound queues keep their messages."""
        async with self._switching:
            if self._stopping:
                return
            self._watch.start()
            if self._outbound:
                await self._stop_outbound()

    async def resume(self) -> None:
        """Send again (called once the stored state is no longer paused)."""
        async with self._switching:
            self._watch.stop()
            if self._stopping:
                return
            if self.transport is not None and not self._outbound:
                await self._consume_outbound()

    def _pause_soon(self) -> None:
        """Pause from inside a handler (which pausing waits for)."""
        if self._outbound:
            ensureDeferred(self.pause()).addErrback(
                lambda failure: self.log.failure("Could not pause", failure)
            )

    async def _handle_outbound(self, priority: int, message: Message) -> None:
        transport = self.transport
        if transport is None:
            raise TemporaryFailure(f"channel {self.id} has no running transport")
        if not self._may_send():
            raise TemporaryFailure(
                f"channel {self.id}: this process's lease ran out; not sending"
            )
        if not getattr(transport, "SPENDS_SEND_BUDGET", False):
            await self.budget.spend(1)
        try:
            admitted = await self.traffic.admit(priority, message)
        except ChannelPaused:
            self._pause_soon()
            raise
        if not admitted:
            return  # cancelled: never sent
        try:
            await transport.handle_outbound(as_user_message(message))
        except RETRY_LATER:
            raise  # not the transport's fault: the message is tried again
        except Exception as exc:
            # A crashing transport shows as down until it sends again.
            self.transport_error = f"{type(exc).__name__}: {exc}"
            await self._record_down(self.transport_error, "transport_error")
            raise
        await self._deps.rates.increment(self.id, SENT_RATE)
        if self.transport_error is not None:
            self.transport_error = None
            await self._deps.statuses.clear(self.id, "transport")

    async def stop(self) -> None:
        """Stop every part; never fails, whatever state the channel is in."""
        # Cancel every consumer first (no new deliveries), then stop the
        # transport so that handlers still waiting on it give up and requeue,
        # then wait for the consumers to finish.
        self._stopping = True
        self._watch.stop()
        consumers, self._consumers = self._consumers, []
        consumers.extend(self._outbound)
        self._outbound = []
        stopping = [ensureDeferred(consumer.stop()) for consumer in consumers]
        self.budget.stop()
        await self._stop_transport()
        for consumer, done in zip(consumers, stopping, strict=True):
            try:
                await done
            except Exception:
                self.log.failure(
                    "Error stopping consumer of {queue}", queue=consumer.queue
                )
        await self._statuses.flush()
        if self.running:
            self.log.info("Channel {channel_id} stopped", channel_id=self.id)
        self.running = False


async def _settled(steps: list[Awaitable[object]]) -> None:
    """Run ``steps`` at once; once every one is done, raise the first error."""
    results = await gatherResults([ensureDeferred(_result(step)) for step in steps])
    for error in results:
        if error is not None:
            raise error


async def _result(step: Awaitable[object]) -> BaseException | None:
    try:
        await step
    except Exception as exc:
        return exc
    return None
