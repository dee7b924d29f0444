"""Assembles a running Junebug from its config: backends, channels, the API.

:func:`build` only constructs (nothing dials, listens or starts);
:meth:`Junebug.start` then starts the parts in order, recording each one's
stop on a :class:`~junebug.lifecycle.StopStack`, and :meth:`Junebug.stop`
unwinds that stack.  The API listens before Redis and RabbitMQ are reached and
answers 503 until everything has started (see :mod:`junebug.api.readiness`),
as the original kept serving while its backends were away.
"""

from __future__ import annotations

import time
from collections.abc import Coroutine
from typing import Any

import attrs
from twisted.internet import defer
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import AdoptedStreamServerEndpoint, serverFromString
from twisted.internet.interfaces import IListeningPort, IStreamServerEndpoint
from twisted.logger import Logger

from junebug.amqp.broker import Broker
from junebug.amqp.memory import MemoryBroker
from junebug.amqp.rabbitmq import RabbitMQBroker
from junebug.api.app import JunebugApi, dialect_resource
from junebug.api.auth import auth_gate
from junebug.api.dependencies import ApiDependencies
from junebug.api.metrics_port import metrics_port_resource
from junebug.api.readiness import Readiness
from junebug.api.site import api_site
from junebug.channel_logs import LogFileRouter
from junebug.channels.registry import ChannelRegistry
from junebug.channels.sending import MessageSender
from junebug.channels.service import ChannelDependencies
from junebug.cluster.control import Control
from junebug.cluster.node import ClusterNode
from junebug.config import ClusterConfig, JunebugConfig, as_dict
from junebug.health_checks import connection_checks, ready_checks
from junebug.http.client import HttpClient
from junebug.http.delivery import HttpDelivery
from junebug.lifecycle import StopStack
from junebug.metrics.families import JunebugMetrics
from junebug.plugins.host import PluginHost
from junebug.reactors import JunebugReactor
from junebug.routers.interface import RouterDependencies
from junebug.routers.registry import RouterRegistry
from junebug.stored_logs import StoredLogs
from junebug.stores.backend import KeyValueBackend
from junebug.stores.channels import ChannelStore
from junebug.stores.memory import MemoryBackend
from junebug.stores.messages import MessageStore
from junebug.stores.rates import RateStore
from junebug.stores.redis import RedisBackend, redis_backend
from junebug.stores.redis_address import address_of
from junebug.stores.routers import RouterStore
from junebug.stores.status import StatusStore
from junebug.transports.registry import TransportRegistry
from junebug.worker_processes import bind_api_socket

log = Logger()

EMBEDDED_WARNING = (
    "Running with --embedded: channels, messages and queues live in memory only. "
    "NOTHING PERSISTS across restarts. Do not use this in production."
)


class StartTimeout(Exception):
    """Redis or RabbitMQ did not answer within ``startup_timeout``."""


@attrs.define(eq=False)
class Junebug:
    """A Junebug and everything it owns; :func:`build` makes one."""

    reactor: JunebugReactor
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
    stored_logs: StoredLogs
    routers: RouterRegistry
    readiness: Readiness
    cluster: ClusterNode
    control: Control
    metrics: JunebugMetrics = attrs.field(factory=JunebugMetrics)
    listen: bool = True
    #: Where to serve the API instead of ``interface`` and ``port`` (a worker
    #: of ``jb --workers``: the socket its supervisor listens on).
    listen_on: IStreamServerEndpoint | None = None
    #: Serve the API only once everything has started (a worker replacing
    #: one that died, while the others serve), not before Redis is reached.
    listen_when_ready: bool = False
    port: IListeningPort | None = None
    #: The ``dialect_port`` listener, if configured.
    dialect_listener: IListeningPort | None = None
    #: Which worker of ``jb --workers`` this is (1 to N; None: no supervisor).
    worker: int | None = None
    #: The ``metrics_port`` listener, if configured.
    metrics_listener: IListeningPort | None = None
    stops: StopStack = attrs.field(factory=StopStack)
    _starting: Deferred[None] | None = attrs.field(default=None, init=False)
    _start_done: list[Deferred[None]] = attrs.field(factory=list, init=False)
    #: True once :meth:`stop` was called.
    stopping: bool = attrs.field(default=False, init=False)

    async def start(self) -> None:
        """Start every part, in order; if one fails, stop those started and
        raise.  :meth:`stop` may be called meanwhile: it cancels the start."""
        if self._starting is not None:
            raise RuntimeError("Junebug.start called twice")
        self._starting = Deferred.fromCoroutine(self._start_parts())
        try:
            await self._starting
        except BaseException:
            await self.stops.unwind()
            raise
        finally:
            done, self._start_done = self._start_done, []
            for waiter in done:
                waiter.callback(None)

    async def _start_parts(self) -> None:
        stops = self.stops
        self.logs.start()
        stops.push("channel logs", self.logs.stop)
        metrics_port = self.config.metrics_port_of(self.worker)
        if self.listen and metrics_port is not None:
            await self._listen_metrics(metrics_port)
        if self.listen and not self.listen_when_ready:
            await self._listen()
        stops.push("HTTP client", self.http.close)
        stops.push("store", self.backend.close)
        stops.push("stored logs", self.stored_logs.stop)
        stops.push("broker", self.broker.close)
        await self._connect_backends()
        await self.delivery.start()
        stops.push("HTTP delivery", self.delivery.stop)
        self.rates.start()
        stops.push("rate counters", self.rates.stop)
        self.readiness.waiting("the plugins")
        await self.plugins.start(as_dict(self.config))
        stops.push("plugins", self.plugins.stop)
        stops.push("channels", self._stop_channels)
        self.readiness.waiting("the channels")
        await self.channels.start_all()
        for definition in self.config.startup_channels:
            await self.channels.ensure(definition)
        # Placed by the cluster: the transports of this process's share.
        await self.control.start()
        await self.cluster.start()
        stops.push("routers", self.routers.stop_all)
        self.readiness.waiting("the routers")
        await self.routers.start_all()
        if self.listen and self.listen_when_ready:
            await self._listen()
        self.readiness.serve()
        stops.push("serving", self._drain)
        log.info("Junebug is ready: channels and routers started")

    async def _stop_channels(self) -> None:
        """Hand this process's channels over to the others, then stop the
        channels' parts still running here."""
        await self.cluster.leave()
        await self.control.stop()
        await self.channels.stop_all()

    async def _drain(self) -> None:
        """Refuse new requests (503 with ``Retry-After``) and give those in
        flight ``shutdown_timeout`` seconds to finish; the parts they use
        (broker, store) stop only after this."""
        self.readiness.stop_serving()
        in_flight = self.readiness.in_flight
        if in_flight.count:
            log.info(
                "Draining: waiting for {count} requests in flight",
                count=in_flight.count,
            )
        timeout = self.config.shutdown_timeout
        if not await in_flight.idle(self.reactor, timeout):
            log.warn(
                "{count} requests still in flight after {timeout:g}s "
                "(shutdown_timeout): stopping anyway",
                count=in_flight.count,
                timeout=timeout,
            )

    async def _listen(self) -> None:
        config = self.config
        endpoint = self.listen_on or serverFromString(
            self.reactor, f"tcp:{config.port}:interface={config.interface}"
        )
        site = api_site(
            self.api.resource(),
            self.reactor,
            limits=config.server_limits,
            gate=auth_gate(config),
        )
        port = await endpoint.listen(site)
        self.port = port
        self.stops.push("API port", self._stop_listening)
        if config.dialect_port is not None:
            await self._listen_dialects(config.dialect_port)
        address = port.getHost()
        log.info(
            "Junebug is listening on {host}:{port}",
            host=config.interface,
            port=getattr(address, "port", config.port),
        )

    async def _listen_dialects(self, port_number: int) -> None:
        """``dialect_port``: the Kannel and Jasmin routes alone, with no API
        credentials (each request carries its send user's)."""
        config = self.config
        site = api_site(
            dialect_resource(self.api.deps, log),
            self.reactor,
            limits=config.server_limits,
        )
        if self.worker is None:
            endpoint: Any = serverFromString(
                self.reactor, f"tcp:{port_number}:interface={config.interface}"
            )
            port = await endpoint.listen(site)
        else:
            # Every worker of ``jb --workers`` serves the port: each binds it
            # with SO_REUSEPORT (the supervisor shares out only the API's).
            sock = bind_api_socket(config.interface, port_number, reuse_port=True)
            family = sock.family
            # The endpoint closes the descriptor once the reactor has its copy.
            endpoint = AdoptedStreamServerEndpoint(self.reactor, sock.detach(), family)
            port = await endpoint.listen(site)
        self.dialect_listener = port
        self.stops.push("dialect port", self._stop_dialects)
        log.info(
            "Kannel and Jasmin send routes on {host}:{port}",
            host=config.interface,
            port=getattr(port.getHost(), "port", port_number),
        )

    async def _listen_metrics(self, port_number: int) -> None:
        """``metrics_port``: this process's own ``/metrics`` and
        ``/health/live``, from the start until the very end of a stop."""
        config = self.config
        endpoint = serverFromString(
            self.reactor, f"tcp:{port_number}:interface={config.interface}"
        )
        site = api_site(
            metrics_port_resource(self.api.deps, self.api.exposition),
            self.reactor,
            limits=config.server_limits,
            gate=auth_gate(config),
        )
        port = await endpoint.listen(site)
        self.metrics_listener = port
        self.stops.push("metrics port", self._stop_metrics)
        log.info(
            "This process's /metrics on {host}:{port}",
            host=config.interface,
            port=getattr(port.getHost(), "port", port_number),
        )

    async def _stop_metrics(self) -> None:
        port, self.metrics_listener = self.metrics_listener, None
        if port is not None:
            stopping = port.stopListening()
            if stopping is not None:
                await stopping

    async def _stop_dialects(self) -> None:
        port, self.dialect_listener = self.dialect_listener, None
        if port is not None:
            stopping = port.stopListening()
            if stopping is not None:
                await stopping

    async def _stop_listening(self) -> None:
        port, self.port = self.port, None
        if port is not None:
            stopping = port.stopListening()
            if stopping is not None:
                await stopping

    async def _connect_backends(self) -> None:
        """Wait for Redis, then RabbitMQ: for ever, or ``startup_timeout``
        seconds in all."""
        if self.config.embedded:
            return
        config = self.config
        timeout = config.startup_timeout
        deadline = self.reactor.seconds() + timeout if timeout else None
        backend, broker = self.backend, self.broker
        assert isinstance(backend, RedisBackend)
        assert isinstance(broker, RabbitMQBroker)
        redis = f"Redis at {backend.address}"
        amqp = f"RabbitMQ at {broker.settings.describe()}"
        self.readiness.waiting(redis)
        await self._before(deadline, backend.connect(), redis)
        self.readiness.waiting(amqp)
        broker.start()
        await self._before(deadline, broker.when_connected(), amqp)

    async def _before(
        self, deadline: float | None, waiting: Coroutine[Any, Any, None], what: str
    ) -> None:
        """Await ``waiting``; :class:`StartTimeout` if ``deadline`` passes."""
        connecting: Deferred[None] = Deferred.fromCoroutine(waiting)
        if deadline is not None:
            connecting.addTimeout(
                max(0.0, deadline - self.reactor.seconds()), self.reactor
            )
        log.info("Waiting for {what}", what=what)
        try:
            await connecting
        except defer.TimeoutError:
            raise StartTimeout(
                f"{what} did not answer within {self.config.startup_timeout:g}s "
                "(startup_timeout)"
            ) from None
        log.info("Connected to {what}", what=what)

    async def stop(self) -> None:
        """Stop every started part, newest first (cancelling a start still
        under way); a part failing to stop is logged and the rest go on."""
        self.stopping = True
        if self._starting is not None and not self._starting.called:
            done: Deferred[None] = Deferred()
            self._start_done.append(done)
            self._starting.cancel()
            await done
        await self.stops.unwind()


def backends(
    reactor: JunebugReactor, config: JunebugConfig
) -> tuple[KeyValueBackend, Broker]:
    """The store and broker the config asks for, not yet connected."""
    if config.embedded:
        log.warn(EMBEDDED_WARNING)
        return MemoryBackend(reactor, config.redis.key_prefix), MemoryBroker(reactor)
    redis = config.redis
    backend = redis_backend(address_of(redis), redis.key_prefix, clock=reactor)
    settings = config.amqp.settings(config.amqp_url)
    broker = RabbitMQBroker(reactor, settings)
    return backend, broker


#: The lease of an embedded Junebug (seconds, about ten years): its store is
#: in its own memory, so no other process can ever take one of its channels.
EMBEDDED_LEASE = 3e8


def cluster_settings(config: JunebugConfig) -> ClusterConfig:
    """The cluster config; with ``--embedded`` leases never run out (there
    is no other process, and a test's clock may jump far ahead)."""
    if config.embedded:
        return attrs.evolve(config.cluster, lease_seconds=EMBEDDED_LEASE)
    return config.cluster


def build(
    reactor: JunebugReactor,
    config: JunebugConfig,
    *,
    listen: bool = True,
    listen_on: IStreamServerEndpoint | None = None,
    listen_when_ready: bool = False,
    worker: int | None = None,
) -> Junebug:
    """Construct every part of a Junebug; nothing connects or starts yet.
    ``worker`` is its index among the workers of ``jb --workers`` (1 to N).

    Raises :class:`~junebug.errors.ConfigError` for an unusable config (an
    unknown plugin class, say) before anything has to be undone.
    """
    backend, broker = backends(reactor, config)
    metrics = JunebugMetrics()
    stored_logs = StoredLogs(
        backend,
        reactor,
        lines=config.stored_log_lines,
        ttl=config.stored_logs_ttl,
        message_lines=config.message_log_lines,
        message_ttl=max(config.inbound_message_ttl, config.outbound_message_ttl),
        dropped=metrics.stored_log_entries_dropped,
    )
    logs = LogFileRouter(
        config.logging_path,
        config.log_rotate_size,
        config.max_log_files,
        store=stored_logs,
    )
    http = HttpClient(
        reactor, ca_file=config.http_ca_file, networks=config.callback_networks
    )
    delivery = HttpDelivery(
        reactor,
        http,
        broker,
        max_age=config.http_retry_max_age,
        prefetch=config.amqp.prefetch,
        metrics=metrics,
    )
    messages = MessageStore(
        backend, config.inbound_message_ttl, config.outbound_message_ttl
    )
    rates = RateStore(backend, reactor, config.metric_window)
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
        metrics=metrics,
        rate_limit_margin=config.rate_limit_margin,
        handoff_timeout=config.handoff_timeout,
        stored_logs=stored_logs,
    )
    plugins = PluginHost(config.plugins, reactor)
    cluster = ClusterNode(
        backend, reactor, cluster_settings(config), monotonic=time.monotonic
    )
    me = cluster.identity
    metrics.identify(me.id, me.host, me.pid, "" if worker is None else str(worker))
    registry = ChannelRegistry(ChannelStore(backend), deps, plugins, cluster.ownership)
    reconciler = cluster.attach(registry)
    control = Control(
        broker=broker,
        backend=backend,
        clock=reactor,
        registry=registry,
        reconciler=reconciler,
        timeout=config.cluster.control_timeout,
    )
    reconciler.handed_over = control.tell_take
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
            stored_logs=stored_logs,
        ),
        sender,
        config.routers,
        config.replace_routers,
    )
    reconciler.routers = routers
    readiness = Readiness()
    api = JunebugApi(
        ApiDependencies(
            config=config,
            channels=registry,
            sender=sender,
            reactor=reactor,
            http=http,
            delivery=delivery,
            health_checks=connection_checks(backend, broker, readiness, plugins),
            ready_checks=ready_checks(backend, broker, readiness, registry),
            routers=routers,
            readiness=readiness,
            metrics=metrics,
            stored_logs=stored_logs,
            cluster=cluster,
            control=control,
        )
    )
    return Junebug(
        reactor=reactor,
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
        stored_logs=stored_logs,
        routers=routers,
        readiness=readiness,
        cluster=cluster,
        control=control,
        metrics=metrics,
        listen=listen,
        listen_on=listen_on,
        listen_when_ready=listen_when_ready,
        worker=worker,
    )


async def start_junebug(
    reactor: JunebugReactor, config: JunebugConfig, *, listen: bool = True
) -> Junebug:
    """Build a Junebug and start it (see :meth:`Junebug.start`)."""
    junebug = build(reactor, config, listen=listen)
    await junebug.start()
    return junebug
