"""A running message API: broker, state cache, forwarder and HTTP server.

Wiring, all in :func:`start_message_api`:

- HTTP ``POST {base_url_path}/messages`` → :class:`MessageApiSender` → publish
  to ``<connector>.outbound`` (declared at start, so MT waits for a transport
  that is not consuming yet);
- ``<connector>.inbound`` → :func:`~junebug.message_api.inbound.normalise_inbound`
  → :class:`~junebug.channels.forwarding.Forwarder` → state cache + POST to
  ``mo_message_url``;
- ``<connector>.event`` → the same Forwarder → POST to the message's
  ``event_url``, else ``default_event_url``, else a warning;
- a POST that fails is retried durably by jb's
  :class:`~junebug.http.delivery.HttpDelivery` (through RabbitMQ, for up to
  ``http_retry_max_age`` seconds, then ``junebug.http.dead``).

:meth:`MessageApi.stop` undoes it in reverse order.
"""

from __future__ import annotations

from typing import Any

import attrs
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IListeningPort
from twisted.logger import Logger

from junebug.amqp import topology
from junebug.amqp.broker import Broker, Consumer
from junebug.amqp.rabbitmq import AmqpSettings, RabbitMQBroker
from junebug.api.site import api_site
from junebug.channels.forwarding import Forwarder
from junebug.http.client import HttpClient
from junebug.http.delivery import HttpDelivery
from junebug.message_api.app import MessageApiApp, auth_gate
from junebug.message_api.config import MessageApiConfig
from junebug.message_api.inbound import normalise_inbound
from junebug.message_api.sending import MessageApiSender, NoRates
from junebug.message_api.state_cache import StateCache, open_state_cache
from junebug.messages import Message
from junebug.reactors import JunebugReactor, TimeTCPReactor

log = Logger(namespace="junebug.message_api")

#: What the log says once the API serves (tests wait for it).
LISTENING = "Junebug message API is listening on {address}"


def amqp_settings(config: MessageApiConfig) -> AmqpSettings:
    """The broker connection settings: ``amqp_url`` if given, else ``amqp``."""
    return config.amqp.settings(config.amqp_url)


async def connect_broker(reactor: TimeTCPReactor, config: MessageApiConfig) -> Broker:
    """A RabbitMQ broker, connected."""
    broker = RabbitMQBroker(reactor, amqp_settings(config))
    broker.start()
    try:
        await broker.when_connected(timeout=30.0)
    except BaseException:
        await broker.close()
        raise
    return broker


@attrs.define
class MessageApi:
    """A running message API and everything it owns."""

    config: MessageApiConfig
    broker: Broker
    cache: StateCache
    http: HttpClient
    delivery: HttpDelivery
    forwarder: Forwarder
    sender: MessageApiSender
    app: MessageApiApp
    consumers: list[Consumer] = attrs.field(factory=list)
    port: IListeningPort | None = None
    owns_broker: bool = True

    @property
    def address(self) -> Any:
        """Where the HTTP server listens (``None`` when not listening)."""
        return None if self.port is None else self.port.getHost()

    async def stop(self) -> None:
        """Stop serving and consuming, then close connections."""
        if self.port is not None:
            stopping = self.port.stopListening()
            self.port = None
            if stopping is not None:
                await stopping
        consumers, self.consumers = self.consumers, []
        for consumer in reversed(consumers):
            try:
                await consumer.stop()
            except Exception:
                log.failure("Error stopping consumer of {queue}", queue=consumer.queue)
        try:
            await self.delivery.stop()
        except Exception:
            log.failure("Error stopping the HTTP retry consumer")
        if self.owns_broker:
            await self.broker.close()
        await self.http.close()
        await self.cache.close()


def build_forwarder(
    config: MessageApiConfig, broker: Broker, cache: StateCache, http: HttpDelivery
) -> Forwarder:
    """The forwarder of the connector's inbound messages and events."""
    return Forwarder(
        owner_id=config.connector_name,
        broker=broker,
        messages=cache.store,
        rates=NoRates(),
        http=http,
        log=log,
        mo_url=config.mo_message_url,
        mo_url_auth_token=config.mo_message_url_auth_token,
        mo_url_timeout=config.mo_message_url_timeout,
        event_url_timeout=config.event_url_timeout,
        view_id=config.connector_name,
        default_event_url=config.default_event_url,
        default_event_auth_token=config.default_event_auth_token,
        warn_without_event_url=True,
    )


async def start_message_api(
    reactor: TimeTCPReactor,
    config: MessageApiConfig,
    *,
    broker: Broker | None = None,
    cache: StateCache | None = None,
    listen: bool = True,
) -> MessageApi:
    """Connect, start consuming, then serve HTTP.

    ``broker`` and ``cache`` replace the configured ones (tests); a broker
    passed in is not closed by :meth:`MessageApi.stop`.
    """
    owns_broker = broker is None
    if cache is None:
        cache = await open_state_cache(
            reactor, config.state_cache_class, config.state_cache_config
        )
    http = HttpClient(reactor, ca_file=config.http_ca_file)
    try:
        if broker is None:
            broker = await connect_broker(reactor, config)
    except BaseException:
        await http.close()
        await cache.close()
        raise
    connector = config.connector_name
    sender = MessageApiSender(
        broker=broker,
        messages=cache.store,
        rates=NoRates(),
        allow_expired_replies=config.allow_expired_replies,
        transport_type=config.transport_type,
        default_from_addr=config.default_from_addr,
    )
    delivery = HttpDelivery(
        reactor,
        http,
        broker,
        max_age=config.http_retry_max_age,
        prefetch=config.worker_concurrency,
    )
    forwarder = build_forwarder(config, broker, cache, delivery)
    api = MessageApi(
        config=config,
        broker=broker,
        cache=cache,
        http=http,
        delivery=delivery,
        forwarder=forwarder,
        sender=sender,
        app=MessageApiApp(config, sender, reactor),
        owns_broker=owns_broker,
    )

    async def handle_inbound(message: Message) -> None:
        await forwarder.handle_inbound(normalise_inbound(message, reactor))

    try:
        await delivery.start()
        await broker.declare_queue(topology.outbound(connector))
        for queue, handler in (
            (topology.inbound(connector), handle_inbound),
            (topology.event(connector), forwarder.handle_event),
        ):
            api.consumers.append(
                await broker.consume(queue, handler, config.worker_concurrency)
            )
        if listen:
            endpoint = serverFromString(reactor, config.endpoint)
            site = api_site(
                api.app.resource(),
                reactor,
                limits=config.server_limits,
                gate=auth_gate(config.auth),
            )
            api.port = await endpoint.listen(site)
            log.info(LISTENING, address=describe(api.address))
    except BaseException:
        await api.stop()
        raise
    return api


def describe(address: Any) -> str:
    """``host:port`` of a TCP address, else its string form."""
    host, port = getattr(address, "host", None), getattr(address, "port", None)
    if host is not None and port is not None:
        return f"{host}:{port}"
    name = getattr(address, "name", None)
    return str(name if name is not None else address)


async def serve(reactor: JunebugReactor, config: MessageApiConfig) -> None:
    """Start the message API, then run until the reactor shuts down."""
    from junebug.runner import serve_until_shutdown

    await serve_until_shutdown(
        reactor, lambda: start_message_api(reactor, config), "jb message-api"
    )


def run(reactor: JunebugReactor, config: MessageApiConfig) -> Deferred[None]:
    """The ``task.react`` main function of ``jb message-api``."""
    return Deferred.fromCoroutine(serve(reactor, config))
