"""Assembles a running Junebug from its config: backends, channels, the API.

Start-up that must succeed before serving (reach Redis and RabbitMQ, start the
plugins and every stored channel) happens in :func:`start_junebug`, which the
CLI awaits; :meth:`Junebug.stop` undoes it in reverse order.
"""

from __future__ import annotations

from typing import Any

import attrs
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IListeningPort
from twisted.logger import Logger

from junebug.amqp.broker import Broker
from junebug.amqp.memory import MemoryBroker
from junebug.amqp.rabbitmq import AmqpSettings, RabbitMQBroker
from junebug.api.app import JunebugApi
from junebug.api.auth import auth_gate
from junebug.api.dependencies import ApiDependencies
from junebug.api.site import api_site
from junebug.channel_logs import LogFileRouter
from junebug.channels.registry import ChannelRegistry
from junebug.channels.sending import MessageSender
from junebug.channels.service import ChannelDependencies
from junebug.config import JunebugConfig, as_dict
from junebug.http.client import HttpClient
from junebug.http.delivery import HttpDelivery
from junebug.plugins.host import PluginHost
from junebug.routers.interface import RouterDependencies
from junebug.routers.registry import RouterRegistry
from junebug.stores.backend import KeyValueBackend
from junebug.stores.channels import ChannelStore
from junebug.stores.memory import MemoryBackend
from junebug.stores.messages import MessageStore
from junebug.stores.rates import RateStore
from junebug.stores.redis import connect_redis
from junebug.stores.redis_address import address_of
from junebug.stores.routers import RouterStore
from junebug.stores.status import StatusStore
from junebug.transports.registry import TransportRegistry

log = Logger()

EMBEDDED_WARNING = (
    "Running with --embedded: channels, messages and queues live in memory only. "
    "NOTHING PERSISTS across restarts. Do not use this in production."
)


@attrs.define
class Junebug:
    """A running Junebug and everything it owns."""

    config: JunebugConfig
    backend: KeyValueBackend
    broker: Broker
    http: HttpClient
    delivery: HttpDelivery
    rates: RateStore
    plugins: PluginHost
    channels: ChannelRegistry
    api: JunebugApi
    logs: LogFileRouter
    port: IListeningPort | None = None
    routers: RouterRegistry | None = None

    async def stop(self) -> None:
        """Stop serving, then stop channels, plugins and connections."""
        if self.port is not None:
            stopping = self.port.stopListening()
            if stopping is not None:
                await stopping
            self.port = None
        if self.routers is not None:
            await self.routers.stop_all()
        await self.channels.stop_all()
        await self.delivery.stop()
        await self.rates.stop()
        await self.plugins.stop()
        await self.broker.close()
        await self.http.close()
        await self.backend.close()
        self.logs.stop()


def connection_checks(backend: KeyValueBackend, broker: Broker) -> list[Any]:
    """Checks /health runs first: each returns None or a problem description."""

    async def broker_connected() -> dict[str, str] | None:
        if not broker.is_connected():
            return {
                "type": "AmqpConnectionError",
                "message": "Not connected to RabbitMQ",
            }
        blocked = broker.blocked_reason()
        if blocked is not None:
            return {
                "type": "AmqpBlocked",
                "message": f"RabbitMQ blocks publishing: {blocked}",
            }
        return None

    async def store_answers() -> dict[str, str] | None:
        try:
            if await backend.ping():
                return None
        except Exception as exc:
            return {"type": "StoreUnavailable", "message": str(exc)}
        return {"type": "StoreUnavailable", "message": "Redis does not answer"}

    return [broker_connected, store_answers]


async def connect_backends(
    reactor: Any, config: JunebugConfig
) -> tuple[KeyValueBackend, Broker]:
    """The store and broker the config asks for, connected."""
    if config.embedded:
        log.warn(EMBEDDED_WARNING)
        return MemoryBackend(reactor, config.redis.key_prefix), MemoryBroker(reactor)
    redis = config.redis
    backend = await connect_redis(
        key_prefix=redis.key_prefix, address=address_of(redis), clock=reactor
    )
    amqp = config.amqp
    if config.amqp_url is not None:
        settings = AmqpSettings.from_url(config.amqp_url)
    else:
        settings = AmqpSettings(
            host=amqp.hostname,
            port=amqp.port,
            vhost=amqp.vhost,
            username=amqp.username,
            password=amqp.password,
            heartbeat=amqp.heartbeat,
        )
    broker = RabbitMQBroker(reactor, settings)
    broker.start()
    await broker.when_connected(timeout=30.0)
    return backend, broker


async def start_junebug(
    reactor: Any, config: JunebugConfig, *, listen: bool = True
) -> Junebug:
    """Connect, start plugins and channels, then serve the API."""
    logs = LogFileRouter(
        config.logging_path, config.log_rotate_size, config.max_log_files
    )
    logs.start()
    backend, broker = await connect_backends(reactor, config)
    http = HttpClient(
        reactor, ca_file=config.http_ca_file, networks=config.callback_networks
    )
    delivery = HttpDelivery(
        reactor,
        http,
        broker,
        max_age=config.http_retry_max_age,
        prefetch=config.amqp.prefetch,
    )
    await delivery.start()
    messages = MessageStore(
        backend, config.inbound_message_ttl, config.outbound_message_ttl
    )
    rates = RateStore(backend, reactor, config.metric_window)
    rates.start()
    deps = ChannelDependencies(
        reactor=reactor,
        broker=broker,
        backend=backend,
        messages=messages,
        statuses=StatusStore(backend),
        rates=rates,
        http=delivery.bounded(config.outbound_message_ttl),
        mo_http=delivery.bounded(config.inbound_message_ttl),
        transports=TransportRegistry(config.channels, config.replace_channels),
        prefetch=config.amqp.prefetch,
    )
    plugins = PluginHost(config.plugins)
    registry = ChannelRegistry(ChannelStore(backend), deps, plugins)
    sender = MessageSender(
        broker=broker,
        messages=messages,
        rates=rates,
        allow_expired_replies=config.allow_expired_replies,
    )
    routers = RouterRegistry(
        RouterDependencies(
            reactor=reactor,
            broker=broker,
            messages=messages,
            rates=rates,
            http=http,
            channels=registry,
            store=RouterStore(backend),
            prefetch=config.amqp.prefetch,
        ),
        sender,
        config.routers,
        config.replace_routers,
    )
    api = JunebugApi(
        ApiDependencies(
            config=config,
            channels=registry,
            sender=sender,
            reactor=reactor,
            http=http,
            delivery=delivery,
            health_checks=connection_checks(backend, broker),
            routers=routers,
        )
    )
    junebug = Junebug(
        config=config,
        backend=backend,
        broker=broker,
        http=http,
        delivery=delivery,
        rates=rates,
        plugins=plugins,
        channels=registry,
        api=api,
        logs=logs,
        routers=routers,
    )
    await plugins.start(as_dict(config))
    await registry.start_all()
    for definition in config.startup_channels:
        await registry.ensure(definition)
    await routers.start_all()
    if listen:
        endpoint = serverFromString(
            reactor, f"tcp:{config.port}:interface={config.interface}"
        )
        site = api_site(
            api.resource(),
            reactor,
            limits=config.server_limits,
            gate=auth_gate(config),
        )
        junebug.port = await endpoint.listen(site)
        address = junebug.port.getHost()
        log.info(
            "Junebug is listening on {host}:{port}",
            host=config.interface,
            port=getattr(address, "port", config.port),
        )
    return junebug
