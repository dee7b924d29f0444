"""``/health/live`` and ``/health/ready``: open, never gated, and honest about
the backends and the channels."""

from __future__ import annotations

import json
from typing import Any

from treq.testing import StubTreq
from twisted.internet import reactor
from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase

from junebug.amqp.memory import MemoryBroker
from junebug.channels.service import Channel
from junebug.service import Junebug, build
from junebug.testing.api import ApiDriver
from junebug.testing.backends_away import StoreSwitch
from junebug.testing.polling import poll_until
from junebug.testing.rabbitmq import rabbitmq_test_settings
from junebug.testing.redis import redis_test_address
from junebug.tests import test_service
from junebug.tests.test_service import Proxy, embedded_config


def stub_get(junebug: Junebug) -> Any:
    client = StubTreq(junebug.api.resource())

    async def get(path: str) -> tuple[int, Any]:
        response = await client.get("http://jb" + path)
        return response.code, json.loads(await response.content())

    return get


def error_types(body: dict[str, Any]) -> list[str]:
    return [error["type"] for error in body["result"]["errors"]]


class ProbeTests(TestCase):
    async def test_live_while_starting_ready_once_started(self) -> None:
        """live answers 200 from build to stop; ready 503 until started and
        again once stopping; neither is behind the start-up gate."""
        junebug = build(Clock(), embedded_config(), listen=False)
        get = stub_get(junebug)
        self.assertEqual(
            await get("/health/live"),
            (
                200,
                {
                    "status": 200,
                    "code": "OK",
                    "description": "live",
                    "result": {"state": "starting"},
                },
            ),
        )
        code, body = await get("/health/ready")
        self.assertEqual((code, body["description"]), (503, "not ready"))
        self.assertEqual(
            body["result"]["errors"],
            [
                {
                    "type": "NotReady",
                    "message": "Junebug is starting: waiting for start-up",
                }
            ],
        )
        await junebug.start()
        self.assertEqual(
            await get("/health/ready"),
            (200, {"status": 200, "code": "OK", "description": "ready", "result": {}}),
        )
        code, body = await get("/health/live")
        self.assertEqual((code, body["result"]), (200, {"state": "ready"}))
        await junebug.stop()
        code, body = await get("/health/ready")
        self.assertEqual(code, 503)
        self.assertIn("NotReady", error_types(body))
        code, body = await get("/health/live")
        self.assertEqual((code, body["result"]), (200, {"state": "stopping"}))

    async def test_probes_need_no_credentials(self) -> None:
        """With API credentials configured the probes stay open, as /health."""
        junebug = build(Clock(), embedded_config(api_token="sekrit"), listen=False)
        await junebug.start()
        self.addCleanup(junebug.stop)
        get = stub_get(junebug)
        self.assertEqual((await get("/health/live"))[0], 200)
        self.assertEqual((await get("/health/ready"))[0], 200)
        self.assertEqual((await get("/channels/"))[0], 401)

    async def test_ready_waits_for_every_stored_channel(self) -> None:
        """A stored channel that is neither running nor failed keeps ready at
        503; one whose start failed is placed (its status says why)."""
        junebug = build(Clock(), embedded_config(), listen=False)
        await junebug.start()
        self.addCleanup(junebug.stop)
        get = stub_get(junebug)
        await junebug.channels.store.save("elsewhere", {"type": "fake", "config": {}})
        code, body = await get("/health/ready")
        self.assertEqual(code, 503)
        self.assertEqual(
            body["result"]["errors"],
            [
                {
                    "type": "ChannelsNotPlaced",
                    "message": "stored channels not started: elsewhere",
                }
            ],
        )
        failing_start = Channel.start

        async def broken_start(channel: Channel) -> None:
            if channel.id == "elsewhere":
                raise RuntimeError("cannot declare its queues")
            await failing_start(channel)

        self.patch(Channel, "start", broken_start)
        await junebug.channels.start_all()
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertEqual(
            junebug.channels.start_failures, {"elsewhere": "cannot declare its queues"}
        )
        self.assertEqual((await get("/health/ready"))[0], 200)

        async def later() -> None:
            pass

        # Waiting to be started again (a backend was away): not placed yet.
        junebug.channels.retries.add("elsewhere", later)
        code, body = await get("/health/ready")
        self.assertEqual((code, error_types(body)), (503, ["ChannelsNotPlaced"]))
        junebug.channels.retries.discard("elsewhere")
        self.assertEqual((await get("/health/ready"))[0], 200)
        self.patch(Channel, "start", failing_start)
        await junebug.channels.restart("elsewhere")
        self.assertEqual(junebug.channels.start_failures, {})

    async def test_a_failed_transport_is_placed(self) -> None:
        """A channel whose transport failed to start is placed: its status
        shows the failure, and ready is 200."""
        junebug = build(Clock(), embedded_config(), listen=False)
        await junebug.start()
        self.addCleanup(junebug.stop)
        await junebug.channels.create(
            {"type": "fake", "config": {"fail_start": True}}, channel_id="broken"
        )
        self.flushLoggedErrors(RuntimeError)
        channel = junebug.channels.running("broken")
        assert channel is not None
        self.assertIn("configured to fail", channel.start_error or "")
        self.assertEqual((await stub_get(junebug)("/health/ready"))[0], 200)

    async def test_probes_in_the_openapi_document(self) -> None:
        junebug = build(Clock(), embedded_config(), listen=False)
        code, body = await stub_get(junebug)("/openapi.json")
        self.assertEqual(code, 200)
        for path in ("/health/live", "/health/ready"):
            self.assertEqual(list(body["paths"][path]), ["get"])


class ProbesWithBackendsDownTests(TestCase):
    """The probes of a jb whose Redis or RabbitMQ is away (forwarders the test
    opens; the shared services are never stopped)."""

    config = test_service.BackendsDownAtStartTests.config

    async def probes(self, api: ApiDriver) -> tuple[int, int, list[str]]:
        live, _, _ = await api.request("GET", "/health/live")
        ready, body, _ = await api.request("GET", "/health/ready")
        errors = [] if ready == 200 else body["result"]["errors"]
        return live, ready, [f"{e['type']}: {e['message']}" for e in errors]

    async def test_probes_while_redis_then_rabbitmq_are_down(self) -> None:
        redis = redis_test_address()
        amqp = rabbitmq_test_settings()
        redis_proxy = Proxy(redis.host, redis.port)
        amqp_proxy = Proxy(amqp.host, amqp.port)
        redis_port = await redis_proxy.listen(self)
        amqp_port = await amqp_proxy.listen(self)
        api = ApiDriver(reactor)
        self.addCleanup(api.stop)
        starting = api.starting(**self.config(redis_port, amqp_port))
        self.assertEqual(
            await self.probes(api),
            (
                200,
                503,
                [
                    "AmqpConnectionError: Not connected to RabbitMQ",
                    "StoreUnavailable: Not connected to Redis at "
                    f"127.0.0.1:{redis_port}",
                    "NotReady: Junebug is starting: waiting for Redis at "
                    f"127.0.0.1:{redis_port}",
                ],
            ),
        )
        redis_proxy.open()
        waiting = f"waiting for RabbitMQ at 127.0.0.1:{amqp_port}"

        async def only_rabbitmq_missing() -> bool:
            _live, _ready, errors = await self.probes(api)
            return any(waiting in e for e in errors) and not any(
                "Redis" in e for e in errors
            )

        await poll_until(only_rabbitmq_missing)
        live, ready, errors = await self.probes(api)
        self.assertEqual((live, ready), (200, 503))
        self.assertIn("AmqpConnectionError: Not connected to RabbitMQ", errors)
        amqp_proxy.open()
        await starting
        self.assertEqual(await self.probes(api), (200, 200, []))


class ProbesWhenBackendsGoAwayTests(TestCase):
    """The probes of a running Junebug (in-memory backends) whose Redis, then
    RabbitMQ, goes away and comes back: ready follows them, live stays 200."""

    async def setUp(self) -> None:  # type: ignore[override]
        self.junebug = build(Clock(), embedded_config(), listen=False)
        await self.junebug.start()
        self.addCleanup(self.junebug.stop)
        await self.junebug.channels.create(
            {"type": "fake", "config": {}}, channel_id="running"
        )
        self.get = stub_get(self.junebug)

    async def probes(self) -> tuple[int, int, list[str]]:
        live, live_body = await self.get("/health/live")
        self.assertEqual(live_body["result"], {"state": "ready"})
        ready, body = await self.get("/health/ready")
        errors = [] if ready == 200 else body["result"]["errors"]
        return live, ready, [f"{e['type']}: {e['message']}" for e in errors]

    async def test_redis_goes_away_and_comes_back(self) -> None:
        self.assertEqual(await self.probes(), (200, 200, []))
        store = StoreSwitch(self.junebug.backend)
        store.away = True
        # The in-memory backend has no connection flag for the channels check
        # to skip on (as it does for a disconnected RedisBackend), so listing
        # the stored channels fails too, also naming Redis.
        self.assertEqual(
            await self.probes(),
            (
                200,
                503,
                [
                    "StoreUnavailable: Redis PING: Connection refused",
                    "ChannelsNotPlaced: cannot list the stored channels: "
                    "Redis SMEMBERS: Connection refused",
                ],
            ),
        )
        store.back()
        self.assertEqual(await self.probes(), (200, 200, []))

    async def test_rabbitmq_goes_away_and_comes_back(self) -> None:
        broker = self.junebug.broker
        assert isinstance(broker, MemoryBroker)
        self.assertEqual(await self.probes(), (200, 200, []))
        broker.disconnect()
        self.assertEqual(
            await self.probes(),
            (200, 503, ["AmqpConnectionError: Not connected to RabbitMQ"]),
        )
        broker.reconnect()
        self.assertEqual(await self.probes(), (200, 200, []))
