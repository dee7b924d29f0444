"""What a router type implements, and what every router gets for free.

A router owns zero or more *destinations*.  Each destination is delivered to
like a channel is: MO messages go to its ``mo_url`` (with ``mo_url_token`` as
``Authorization: Token``) and/or ``<amqp_queue>.inbound``, events to the
``event_url`` of the message they belong to and/or ``<amqp_queue>.event``; MT
messages published by an application to ``<did>.outbound`` or
``<amqp_queue>.outbound`` go to the channel that serves the destination.

The wiring is the original's (so the queues a RabbitMQ operator sees, and that
``/health`` checks, are the same): the router publishes what it routes to
``<did>.inbound`` / ``<did>.event`` and a per-destination
:class:`~junebug.channels.forwarding.Forwarder` consumes them, storing MO under
``<did>:inbound_messages:<mid>`` and events under ``<did>:outbound_messages:<mid>``
and counting rates under the destination id.

A router type subclasses :class:`Router` and implements:

- ``validate_router_config`` / ``validate_destination_config`` (class methods,
  awaited by the API before anything is saved; raise
  :class:`~junebug.errors.InvalidRouterConfig` /
  :class:`~junebug.errors.InvalidRouterDestinationConfig`);
- ``setup`` / ``teardown``: start and stop consuming whatever it routes (e.g.
  with :meth:`Router.consume_channel`);
- ``get_destination_channel``: the channel an MT from a destination goes out on.

Any change to a router or to one of its destinations restarts the router: the
old instance is stopped and a new one started with the new configuration.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from junebug.amqp import topology
from junebug.amqp.broker import Broker, Consumer, MessageHandler
from junebug.channel_logs import owner_logger
from junebug.channels.forwarding import Forwarder, JsonPoster
from junebug.channels.registry import ChannelRegistry
from junebug.messages import Message, api_message_view
from junebug.stored_logs import StoredLogs
from junebug.stores.messages import MessageStore
from junebug.stores.rates import RateStore
from junebug.stores.routers import RouterStore

#: Key, in an outbound record, of the destination the message was sent through.
DESTINATION_KEY = "destination_id"
#: Key, in an outbound record, of the router that destination belongs to.
ROUTER_KEY = "router_id"


@attrs.define
class RouterDependencies:
    """What every router shares with the rest of Junebug."""

    reactor: IReactorTime
    broker: Broker
    messages: MessageStore
    rates: RateStore
    http: JsonPoster
    channels: ChannelRegistry
    store: RouterStore
    prefetch: int = 20
    #: Where router logs are stored (None: files only).
    stored_logs: StoredLogs | None = None


class Router:
    """Base class of router types; see the module documentation.

    ``router`` is the stored router (``id``, ``type``, ``config``, ``label``,
    ``metadata``), ``destinations`` the stored destinations (each with ``id``,
    ``config`` and the delivery keys ``mo_url``, ``mo_url_token``,
    ``mo_format``, ``amqp_queue``, ``character_limit``).
    """

    @classmethod
    async def validate_router_config(
        cls, deps: RouterDependencies, config: dict[str, Any], router_id: str | None
    ) -> None:
        """Raise InvalidRouterConfig if ``config`` cannot be used.

        ``router_id`` is the router being replaced or patched (None on create),
        so checks against other routers can leave it out.
        """

    @classmethod
    async def validate_destination_config(
        cls,
        deps: RouterDependencies,
        config: dict[str, Any],
        *,
        router_id: str,
        others: Sequence[dict[str, Any]],
    ) -> None:
        """Raise InvalidRouterDestinationConfig if ``config`` cannot be used.

        ``others`` are the router's other destinations (full stored configs),
        for rules spanning destinations.
        """

    def __init__(
        self,
        router: dict[str, Any],
        destinations: Sequence[dict[str, Any]],
        deps: RouterDependencies,
    ) -> None:
        self.id: str = router["id"]
        self.router = router
        self.config: dict[str, Any] = router.get("config") or {}
        self.destinations: dict[str, dict[str, Any]] = {
            d["id"]: d for d in destinations
        }
        self.deps = deps
        self.log: Logger = owner_logger("junebug.router", "router_id", self.id)
        self._consumers: list[Consumer] = []
        self.running = False
        self.start_error: str | None = None

    # -- hooks -----------------------------------------------------------------

    async def setup(self) -> None:
        """Start consuming what this router routes."""

    async def teardown(self) -> None:
        """Release whatever :meth:`setup` acquired besides consumers."""

    def get_destination_channel(self, destination_id: str, body: Any) -> str:
        """The channel id an MT message from ``destination_id`` is sent on."""
        raise NotImplementedError

    # -- lifecycle -------------------------------------------------------------

    def destination_forwarder(self, destination: dict[str, Any]) -> Forwarder:
        """The forwarder delivering one destination's MO and events."""
        deps = self.deps
        return Forwarder(
            owner_id=destination["id"],
            broker=deps.broker,
            messages=deps.messages,
            rates=deps.rates,
            http=deps.http,
            log=self.log,
            mo_url=destination.get("mo_url"),
            mo_url_auth_token=destination.get("mo_url_token"),
            mo_format=destination.get("mo_format") or "junebug",
            amqp_queue=destination.get("amqp_queue"),
            view_id=destination["id"],
            mo_http=getattr(deps, "mo_http", None),
            record=None
            if deps.stored_logs is None
            else deps.stored_logs.recorder(destination["id"]),
        )

    async def consume(self, queue: str, handler: MessageHandler) -> None:
        """Consume ``queue`` until the router stops."""
        consumer = await self.deps.broker.consume(
            queue, handler, prefetch=self.deps.prefetch
        )
        self._consumers.append(consumer)

    async def start(self) -> None:
        """Start the destinations first (their queues must exist before
        anything is routed to them), then the router's own consumers."""
        for destination_id, destination in self.destinations.items():
            forwarder = self.destination_forwarder(destination)
            await self.consume(
                topology.inbound(destination_id), forwarder.handle_inbound
            )
            await self.consume(topology.event(destination_id), forwarder.handle_event)
            # MT for the destination's channel: published to <did>.outbound (the
            # original's key) or to <amqp_queue>.outbound.
            outbound = self._outbound_handler(destination_id)
            await self.consume(topology.outbound(destination_id), outbound)
            queue = destination.get("amqp_queue")
            if queue:
                await self.consume(topology.outbound(queue), outbound)
        await self.setup()
        self.running = True
        self.log.info(
            "Router {router_id} started with {count} destination(s)",
            router_id=self.id,
            count=len(self.destinations),
        )

    async def stop(self) -> None:
        """Stop every consumer, then :meth:`teardown`; never fails."""
        consumers, self._consumers = self._consumers, []
        for consumer in reversed(consumers):
            try:
                await consumer.stop()
            except Exception:
                self.log.failure(
                    "Error stopping consumer of {queue}", queue=consumer.queue
                )
        try:
            await self.teardown()
        except Exception:
            self.log.failure("Error tearing down router {router_id}", router_id=self.id)
        if self.running:
            self.log.info("Router {router_id} stopped", router_id=self.id)
        self.running = False

    # -- helpers for router types ----------------------------------------------

    async def consume_channel(
        self,
        channel_id: str,
        on_inbound: MessageHandler,
        on_event: MessageHandler,
    ) -> None:
        """Consume a channel's MO and events (a channel without a destination)."""
        await self.consume(topology.inbound(channel_id), on_inbound)
        await self.consume(topology.event(channel_id), on_event)

    async def send_inbound_to_destination(
        self, destination_id: str, message: Message
    ) -> None:
        await self.deps.broker.publish(topology.inbound(destination_id), message)

    async def send_event_to_destination(
        self, destination_id: str, event: Message
    ) -> None:
        await self.deps.broker.publish(topology.event(destination_id), event)

    async def send_outbound_to_channel(self, channel_id: str, message: Message) -> None:
        await self.deps.broker.publish(topology.outbound(channel_id), message)

    def _outbound_handler(self, destination_id: str) -> MessageHandler:
        async def handle(message: Message) -> None:
            await self.handle_destination_outbound(destination_id, message)

        return handle

    async def handle_destination_outbound(
        self, destination_id: str, message: Message
    ) -> None:
        """An MT an application published to ``<did>.outbound`` or to the
        destination's ``<amqp_queue>.outbound``.

        As in the original it is relayed unchanged (no character limit, no
        ``outbound`` count); its API view is stored under the channel, marked
        with the destination, so its events are routed back to it.
        """
        channel_id = self.get_destination_channel(
            destination_id, api_message_view(message)
        )
        message_id = message.get("message_id")
        if message_id:
            record = {
                **api_message_view(message),
                DESTINATION_KEY: destination_id,
                ROUTER_KEY: self.id,
            }
            await self.deps.messages.store_outbound(channel_id, message_id, record)
        else:
            self.log.warn(
                "Message from destination {destination_id} has no message_id; "
                "its events cannot be routed",
                destination_id=destination_id,
            )
        await self.send_outbound_to_channel(channel_id, message)
