"""No half-done changes when RabbitMQ or Redis is away (#12.4).

Every change through the API either happens whole or answers 503 with nothing
changed: channels (create, modify, restart, delete), routers (create, PUT,
PATCH, delete) and destinations (create, PUT, PATCH, delete), with the broker
unreachable before the request, going away half-way through it, and with
Redis unreachable or going away half-way.  A stored channel or router that
could not start because a backend was away is started once it is back.
"""

from __future__ import annotations

import socket
from typing import Any

from twisted.internet import reactor, task
from twisted.protocols.portforward import ProxyFactory
from twisted.trial.unittest import TestCase

from junebug.amqp import topology
from junebug.amqp.memory import MemoryBroker
from junebug.amqp.rabbitmq import RabbitMQBroker
from junebug.channels.registry import ChannelRegistry
from junebug.channels.service import ChannelDependencies
from junebug.errors import AmqpConnectionError, BrokerError
from junebug.plugins.host import PluginHost
from junebug.routers.registry import RouterRegistry
from junebug.start_retries import StartRetries
from junebug.stores.channels import ChannelStore
from junebug.stores.memory import MemoryBackend
from junebug.stores.rates import RateStore
from junebug.stores.status import StatusStore
from junebug.testing.api import ApiDriver
from junebug.testing.backends_away import StoreSwitch, drop_broker_on_consume
from junebug.testing.polling import wait_until
from junebug.testing.rabbitmq import rabbitmq_test_settings
from junebug.testing.transports import FakeTransport
from junebug.transports.registry import TransportRegistry

FAKE = {"type": "fake", "config": {}, "mo_url": "http://127.0.0.1:1/mo"}


class AwayBase(TestCase):
    #: What channels are created with.
    base: dict[str, Any] = FAKE

    async def setUp(self) -> None:  # type: ignore[override]
        self.api = ApiDriver(reactor)
        self.addCleanup(self.api.stop)
        self.junebug = await self.api.start()
        broker = self.junebug.broker
        assert isinstance(broker, MemoryBroker)
        self.broker = broker
        self.backend = self.junebug.backend
        self.store = StoreSwitch(self.backend)
        self.channels: ChannelRegistry = self.junebug.channels
        routers = self.junebug.routers
        assert routers is not None
        self.routers: RouterRegistry = routers
        # No reconciliation passes in the background: a pass's own commands
        # would take the failure a test means for a request.
        self.junebug.cluster.reconciler.stop()
        # Retries driven by a clock of our own.
        self.clock = task.Clock()
        self.channels.retries = StartRetries(self.clock, self.channels.log)
        self.routers.retries = StartRetries(self.clock, self.routers.log)

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        code, parsed, _ = await self.api.request(method, path, body)
        return code, parsed

    async def refused(
        self, method: str, path: str, body: Any, error: str = "AmqpConnectionError"
    ) -> dict[str, Any]:
        """The request answers 503 with ``error`` in the envelope."""
        code, parsed = await self.call(method, path, body)
        self.assertEqual(code, 503, parsed)
        self.assertEqual(parsed["status"], 503)
        [problem] = parsed["result"]["errors"]
        self.assertEqual(problem["type"], error)
        if error == "AmqpConnectionError":
            self.assertIn("nothing was changed", problem["message"])
        result: dict[str, Any] = parsed
        return result

    def back(self) -> None:
        self.store.back()
        self.broker.reconnect()

    async def channel(self, **props: Any) -> str:
        code, body = await self.call("POST", "/channels/", {**self.base, **props})
        self.assertEqual(code, 201, body)
        cid: str = body["result"]["id"]
        return cid

    def transport(self, cid: str) -> FakeTransport:
        channel = self.channels.running(cid)
        assert channel is not None
        transport = channel.transport
        assert isinstance(transport, FakeTransport)
        return transport

    async def at_every_command(
        self, method: str, path: str, body: Any, unchanged: Any
    ) -> None:
        """Fail each Redis command of the request in turn (the first, the
        second, ...) until it succeeds; each failure answers 503 and leaves
        what ``unchanged()`` checks as it was."""
        for commands in range(100):
            # Deliveries still under way (a restarted channel's status
            # writes) would take the failure meant for the request.
            await self.broker.flush(timeout=10)
            self.store.fail_after(commands)
            failed = self.store.failed
            code, parsed = await self.call(method, path, body)
            if self.store.failed == failed or code < 300:
                self.assertGreater(commands, 1, "no command was failed")
                return
            self.assertEqual(code, 503, parsed)
            self.assertEqual(parsed["result"]["errors"][0]["type"], "StoreUnavailable")
            self.store.back()
            await unchanged()
        self.fail("the request never succeeded")

    async def stored_channels(self) -> list[str]:
        self.back()
        return await self.channels.store.list_ids()


class ChannelTests(AwayBase):
    async def test_create_while_the_broker_is_away(self) -> None:
        self.broker.disconnect()
        await self.refused("POST", "/channels/", FAKE)
        self.assertEqual(await self.stored_channels(), [])
        self.assertEqual(self.channels.running_ids(), [])

    async def test_create_when_the_broker_goes_away_half_way(self) -> None:
        drop_broker_on_consume(self.broker, nth=2)
        await self.refused("POST", "/channels/", FAKE)
        self.assertEqual(await self.stored_channels(), [])
        self.assertEqual(self.channels.running_ids(), [])
        # Nothing was left behind: the same request works once it is back.
        await self.channel()

    def outbound_records(self, cid: str) -> list[str]:
        return [
            key
            for key in self.backend._data  # type: ignore[attr-defined]
            if key.startswith(f"{cid}:outbound_messages:")
        ]

    async def test_send_while_the_broker_is_away_stores_nothing(self) -> None:
        """A refused MT leaves no record behind (no client has its id)."""
        cid = await self.channel()
        self.broker.disconnect()
        code, body = await self.call(
            "POST", f"/channels/{cid}/messages/", {"to": "+1", "content": "x"}
        )
        self.assertEqual(code, 503, body)
        # The original's words, kept for its clients.
        self.assertEqual(
            body["result"]["errors"][0]["message"],
            "Message not sent, AMQP connection error.",
        )
        self.assertEqual(self.outbound_records(cid), [])
        self.broker.reconnect()
        code, body = await self.call(
            "POST", f"/channels/{cid}/messages/", {"to": "+1", "content": "x"}
        )
        self.assertEqual(code, 201, body)
        self.assertEqual(len(self.outbound_records(cid)), 1)

    async def test_create_while_redis_is_away(self) -> None:
        self.store.away = True
        await self.refused("POST", "/channels/", FAKE, "StoreUnavailable")
        self.assertEqual(await self.stored_channels(), [])
        self.assertEqual(self.channels.running_ids(), [])

    async def test_create_when_redis_goes_away_half_way(self) -> None:
        async def nothing_stored() -> None:
            self.assertEqual(await self.stored_channels(), [])
            self.assertEqual(self.channels.running_ids(), [])
            self.assertEqual(
                [k for k in self.backend._data if k.endswith(":properties")], []
            )

        await self.at_every_command("POST", "/channels/", FAKE, nothing_stored)

    async def test_modify_while_the_broker_is_away(self) -> None:
        cid = await self.channel(label="old")
        transport = self.transport(cid)
        self.broker.disconnect()
        await self.refused(
            "POST", f"/channels/{cid}", {"mo_url": "http://127.0.0.1:1/new"}
        )
        self.assertIs(self.transport(cid), transport)
        self.assertFalse(transport.stopped)
        self.back()
        code, body = await self.call("GET", f"/channels/{cid}")
        self.assertEqual(body["result"]["mo_url"], FAKE["mo_url"])
        # A change that needs no restart needs no broker.
        self.broker.disconnect()
        code, body = await self.call("POST", f"/channels/{cid}", {"label": "new"})
        self.assertEqual((code, body["result"]["label"]), (200, "new"))

    async def test_modify_when_the_broker_goes_away_half_way(self) -> None:
        cid = await self.channel()
        drop_broker_on_consume(self.broker)
        await self.refused("POST", f"/channels/{cid}", {"config": {"number": 2}})
        self.assertEqual((await self.channels.store.load(cid) or {})["config"], {})
        # The old channel could not start again either: it does once the
        # broker is back.
        self.assertIsNone(self.channels.running(cid))
        self.assertEqual(self.channels.retries.pending(), [cid])
        self.broker.reconnect()
        self.clock.advance(1)
        self.assertEqual(self.transport(cid).config.number, 0)
        self.assertEqual(self.channels.retries.pending(), [])

    async def test_modify_while_redis_is_away(self) -> None:
        cid = await self.channel()
        transport = self.transport(cid)
        for change in ({"label": "new"}, {"config": {"number": 2}}):
            self.store.away = True
            await self.refused("POST", f"/channels/{cid}", change, "StoreUnavailable")
            self.assertIs(self.transport(cid), transport)
            self.assertNotIn("label", self.channels.running(cid).properties)  # type: ignore[union-attr]
            self.store.back()
            self.assertEqual(await self.channels.store.load(cid), FAKE)

    async def test_modify_when_redis_goes_away_half_way(self) -> None:
        for change in ({"label": "new"}, {"config": {"number": 2}}):
            cid = await self.channel()

            async def unchanged(cid: str = cid) -> None:
                self.assertEqual(await self.channels.store.load(cid), FAKE)
                self.broker.reconnect()
                self.clock.advance(1)
                channel = self.channels.running(cid)
                assert channel is not None
                self.assertEqual(channel.properties, FAKE)

            await self.at_every_command("POST", f"/channels/{cid}", change, unchanged)

    async def test_restart_while_the_broker_is_away(self) -> None:
        cid = await self.channel()
        transport = self.transport(cid)
        self.broker.disconnect()
        await self.refused("POST", f"/channels/{cid}/restart", None)
        self.assertIs(self.transport(cid), transport)
        self.assertFalse(transport.stopped)

    async def test_restart_when_the_broker_goes_away_half_way(self) -> None:
        cid = await self.channel()
        drop_broker_on_consume(self.broker)
        code, body = await self.call("POST", f"/channels/{cid}/restart")
        self.assertEqual(code, 503, body)
        self.assertIn("it starts once that is back", str(body))
        self.assertEqual(self.channels.retries.pending(), [cid])
        self.broker.reconnect()
        self.clock.advance(1)
        self.assertTrue(self.transport(cid).started)

    async def test_delete_while_redis_is_away(self) -> None:
        cid = await self.channel()
        transport = self.transport(cid)
        self.store.away = True
        await self.refused("DELETE", f"/channels/{cid}", None, "StoreUnavailable")
        self.assertFalse(transport.stopped)
        self.assertEqual(await self.stored_channels(), [cid])

    async def test_delete_needs_no_broker(self) -> None:
        """Deleting stops the channel's consumers, which works offline."""
        cid = await self.channel()
        self.broker.disconnect()
        code, body = await self.call("DELETE", f"/channels/{cid}")
        self.assertEqual(code, 200, body)
        self.assertEqual(await self.stored_channels(), [])
        self.assertEqual(self.channels.running_ids(), [])
        # Its queues could not be deleted (logged, left behind).
        self.assertTrue(self.flushLoggedErrors(BrokerError))

    async def test_a_stored_channel_starts_once_the_broker_is_back(self) -> None:
        """At start-up a channel that cannot start for a backend is retried."""
        first = await self.channel()
        second = await self.channel()
        await self.channels.stop_all()
        self.broker.disconnect()
        await self.channels.start_all()
        self.assertEqual(self.channels.running_ids(), [])
        self.assertEqual(self.channels.retries.pending(), sorted([first, second]))
        self.clock.advance(1)  # still away: tried again later
        self.assertEqual(self.channels.running_ids(), [])
        self.broker.reconnect()
        self.clock.advance(2)
        self.assertEqual(self.channels.running_ids(), sorted([first, second]))
        self.assertEqual(self.channels.retries.pending(), [])

    async def test_a_stored_channel_starts_once_redis_is_back(self) -> None:
        cid = await self.channel()
        await self.channels.stop_all()
        self.store.fail_after(2)  # the ids and the properties are read
        await self.channels.start_all()
        self.assertEqual(self.channels.running_ids(), [])
        self.store.back()
        self.clock.advance(1)
        self.assertEqual(self.channels.running_ids(), [cid])

    async def test_a_deleted_channel_is_not_retried(self) -> None:
        cid = await self.channel()
        await self.channels.stop_all()
        self.broker.disconnect()
        await self.channels.start_all()
        code, _ = await self.call("DELETE", f"/channels/{cid}")
        self.assertEqual(code, 200)
        self.flushLoggedErrors(BrokerError)  # its queues are left behind
        self.broker.reconnect()
        self.clock.advance(1)
        self.assertEqual(self.channels.running_ids(), [])


class RouterTests(AwayBase):
    base = {"type": "fake", "config": {}}  # routed: no mo_url of its own

    async def router(self) -> tuple[str, str]:
        cid = await self.channel()
        code, body = await self.call(
            "POST",
            "/routers/",
            {"type": "from_address", "label": "old", "config": {"channel": cid}},
        )
        self.assertEqual(code, 201, body)
        rid: str = body["result"]["id"]
        return cid, rid

    async def destination(self, rid: str, **props: Any) -> dict[str, Any]:
        code, body = await self.call(
            "POST",
            f"/routers/{rid}/destinations/",
            {"config": {"default": True}, "mo_url": "http://127.0.0.1:1/d", **props},
        )
        self.assertEqual(code, 201, body)
        destination: dict[str, Any] = body["result"]
        return destination

    def running_destinations(self, rid: str) -> list[str]:
        instance = self.routers.running(rid)
        assert instance is not None
        return sorted(instance.destinations)

    async def test_create_while_the_broker_is_away(self) -> None:
        cid = await self.channel()
        self.broker.disconnect()
        await self.refused(
            "POST", "/routers/", {"type": "from_address", "config": {"channel": cid}}
        )
        self.back()
        self.assertEqual(await self.routers.list_ids(), [])

    async def test_create_when_the_broker_goes_away_half_way(self) -> None:
        cid = await self.channel()
        drop_broker_on_consume(self.broker)
        await self.refused(
            "POST", "/routers/", {"type": "from_address", "config": {"channel": cid}}
        )
        self.back()
        self.assertEqual(await self.routers.list_ids(), [])
        self.assertEqual(self.routers.retries.pending(), [])

    async def test_create_when_redis_goes_away_half_way(self) -> None:
        cid = await self.channel()

        async def nothing_stored() -> None:
            self.assertEqual(await self.routers.list_ids(), [])
            self.assertEqual(
                [k for k in self.backend._data if "router" in k],
                [],
            )
            self.assertEqual(self.routers.retries.pending(), [])

        await self.at_every_command(
            "POST",
            "/routers/",
            {"type": "from_address", "config": {"channel": cid}},
            nothing_stored,
        )

    async def test_modify_while_a_backend_is_away(self) -> None:
        cid, rid = await self.router()
        await self.destination(rid)
        running = self.routers.running(rid)
        for method in ("PUT", "PATCH"):
            body = {"type": "from_address", "label": "new", "config": {"channel": cid}}
            self.broker.disconnect()
            await self.refused(method, f"/routers/{rid}", body)
            self.back()
            self.store.away = True
            await self.refused(method, f"/routers/{rid}", body, "StoreUnavailable")
            self.back()
            self.assertEqual((await self.routers.get(rid))["label"], "old")
            self.assertIs(self.routers.running(rid), running)

    async def test_modify_when_the_broker_goes_away_half_way(self) -> None:
        _cid, rid = await self.router()
        destination = await self.destination(rid)
        drop_broker_on_consume(self.broker)
        await self.refused("PATCH", f"/routers/{rid}", {"label": "new"})
        self.assertEqual((await self.routers.get(rid))["label"], "old")
        self.assertIsNone(self.routers.running(rid))
        self.broker.reconnect()
        self.clock.advance(1)
        self.assertEqual(self.running_destinations(rid), [destination["id"]])
        instance = self.routers.running(rid)
        assert instance is not None
        self.assertEqual(instance.router["label"], "old")

    async def test_delete_while_redis_is_away(self) -> None:
        _cid, rid = await self.router()
        running = self.routers.running(rid)
        self.store.away = True
        await self.refused("DELETE", f"/routers/{rid}", None, "StoreUnavailable")
        self.store.back()
        self.assertEqual(await self.routers.list_ids(), [rid])
        self.assertIs(self.routers.running(rid), running)

    async def test_destination_changes_while_a_backend_is_away(self) -> None:
        _cid, rid = await self.router()
        kept = await self.destination(rid, label="kept")
        path = f"/routers/{rid}/destinations/"
        one = f"{path}{kept['id']}"
        changes = [
            ("POST", path, {"config": {"regular_expression": "^1"}, "label": "new"}),
            ("PUT", one, {"config": {"default": True}, "label": "new"}),
            ("PATCH", one, {"label": "new"}),
            ("DELETE", one, None),
        ]
        for method, target, body in changes:
            self.broker.disconnect()
            await self.refused(method, target, body)
            self.back()
            self.store.away = True
            await self.refused(method, target, body, "StoreUnavailable")
            self.back()
            self.assertEqual(await self.routers.store.load_destinations(rid), [kept])
            self.assertEqual(self.running_destinations(rid), [kept["id"]])

    async def test_destination_changes_when_the_broker_goes_away_half_way(
        self,
    ) -> None:
        _cid, rid = await self.router()
        kept = await self.destination(rid, label="kept")
        path = f"/routers/{rid}/destinations/"
        one = f"{path}{kept['id']}"
        changes = [
            ("POST", path, {"config": {"regular_expression": "^1"}, "label": "new"}),
            ("PUT", one, {"config": {"default": True}, "label": "new"}),
            ("PATCH", one, {"label": "new"}),
            ("DELETE", one, None),
        ]
        for method, target, body in changes:
            drop_broker_on_consume(self.broker)
            await self.refused(method, target, body)
            self.assertEqual(await self.routers.store.load_destinations(rid), [kept])
            self.broker.reconnect()
            self.clock.advance(1)
            self.assertEqual(self.running_destinations(rid), [kept["id"]])

    async def test_destination_changes_when_redis_goes_away_half_way(self) -> None:
        _cid, rid = await self.router()
        kept = await self.destination(rid, label="kept")

        async def unchanged() -> None:
            self.assertEqual(await self.routers.store.load_destinations(rid), [kept])
            self.broker.reconnect()
            self.clock.advance(1)
            self.assertEqual(self.running_destinations(rid), [kept["id"]])

        await self.at_every_command(
            "POST",
            f"/routers/{rid}/destinations/",
            {"config": {"regular_expression": "^1"}, "label": "new"},
            unchanged,
        )

    async def test_a_stored_router_starts_once_the_broker_is_back(self) -> None:
        _cid, rid = await self.router()
        destination = await self.destination(rid)
        await self.routers.stop_all()
        self.broker.disconnect()
        await self.routers.start_all()
        self.assertIsNone(self.routers.running(rid))
        self.assertEqual(self.routers.retries.pending(), [rid])
        self.broker.reconnect()
        self.clock.advance(1)
        self.assertEqual(self.running_destinations(rid), [destination["id"]])


def _unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


class UnreachableRabbitMQTests(TestCase):
    """The same with the real AMQP client: nobody listens on the broker's
    port, until a forwarder to the real RabbitMQ does."""

    def registry(self, broker: RabbitMQBroker) -> ChannelRegistry:
        backend = MemoryBackend(reactor)
        rates = RateStore(backend, reactor, 60)
        deps = ChannelDependencies(
            reactor=reactor,
            broker=broker,
            backend=backend,
            messages=None,  # type: ignore[arg-type]
            statuses=StatusStore(backend),
            rates=rates,
            http=None,  # type: ignore[arg-type]
            transports=TransportRegistry(
                {"fake": "junebug.testing.transports.FakeTransport"}
            ),
        )
        registry = ChannelRegistry(ChannelStore(backend), deps, PluginHost([]))
        registry.retries = StartRetries(reactor, registry.log, 0.05, 0.2)
        self.addCleanup(registry.stop_all)
        return registry

    async def test_refused_then_started_once_rabbitmq_is_back(self) -> None:
        port = _unused_port()
        real = rabbitmq_test_settings()
        broker = RabbitMQBroker(
            reactor,
            rabbitmq_test_settings(
                port=port, retry_initial_delay=0.05, retry_max_delay=0.2
            ),
        )
        broker.start()
        self.addCleanup(broker.close)
        registry = self.registry(broker)
        with self.assertRaises(AmqpConnectionError):
            await registry.create({"type": "fake", "config": {}})
        self.assertEqual(await registry.store.list_ids(), [])
        self.assertEqual(registry.deps.backend._data, {})  # type: ignore[attr-defined]

        # A channel stored before cannot start now; it does once RabbitMQ is.
        await registry.store.save("stored", {"type": "fake", "config": {}})
        await registry.start_all()
        self.assertEqual(registry.retries.pending(), ["stored"])
        forwarder = reactor.listenTCP(
            port, ProxyFactory(real.host, real.port), interface="127.0.0.1"
        )
        self.addCleanup(forwarder.stopListening)
        await wait_until(lambda: not registry.retries.pending(), timeout=20)
        channel = registry.running("stored")
        assert channel is not None
        self.assertTrue(channel.running)
        self.assertTrue(broker.is_connected())
        await broker.delete_queue(topology.outbound("stored"))
        await broker.delete_queue(topology.status("stored"))
