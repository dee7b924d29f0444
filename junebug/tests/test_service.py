"""Junebug's lifecycle: build, start part by part, stop in reverse; serving
while Redis or RabbitMQ is still away."""

from __future__ import annotations

import json
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any

from treq.testing import StubTreq
from twisted.internet import reactor
from twisted.internet.defer import CancelledError
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.task import Clock
from twisted.logger import Logger
from twisted.protocols.portforward import ProxyFactory
from twisted.trial.unittest import TestCase

from junebug.config import build_config
from junebug.lifecycle import StopStack
from junebug.service import StartTimeout, build
from junebug.testing.api import ApiDriver
from junebug.testing.polling import poll_until
from junebug.testing.rabbitmq import rabbitmq_test_settings
from junebug.testing.redis import redis_test_address
from junebug.tests.support.process import JbProcess, free_port

HERE = __name__


class FailingPlugin:
    """A plugin whose start fails."""

    def start_plugin(self, config: dict[str, Any], junebug_config: Any) -> None:
        raise RuntimeError("plugin cannot start")

    def stop_plugin(self) -> None:
        raise AssertionError("a plugin that did not start is not stopped")


class StopStackTests(TestCase):
    async def test_unwinds_newest_first_past_failures(self) -> None:
        """Each stop runs once, newest first; a failing one is logged and the
        older ones still run."""
        stack = StopStack()
        ran: list[str] = []

        def failing() -> None:
            ran.append("b")
            raise RuntimeError("b would not stop")

        async def later() -> None:
            ran.append("c")

        stack.push("a", lambda: ran.append("a"))
        stack.push("b", failing)
        stack.push("c", later)
        self.assertEqual(stack.parts, ["c", "b", "a"])
        await stack.unwind()
        self.assertEqual(ran, ["c", "b", "a"])
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        await stack.unwind()
        self.assertEqual(ran, ["c", "b", "a"])


def embedded_config(**overrides: Any) -> Any:
    layer: dict[str, Any] = {
        "embedded": True,
        "logging_path": tempfile.mkdtemp(prefix="junebug-logs-"),
        "channels": {"fake": "junebug.testing.transports.FakeTransport"},
    }
    layer.update(overrides)
    return build_config(layer)


class BuildThenStartTests(TestCase):
    def test_build_starts_nothing(self) -> None:
        """Building touches nothing: no timer, no port, no log observer."""
        clock = Clock()
        config = embedded_config()
        junebug = build(clock, config)
        self.assertEqual(clock.getDelayedCalls(), [])
        self.assertIsNone(junebug.port)
        self.assertEqual(junebug.stops.parts, [])
        Logger().info("an event", channel_id="c1")
        self.assertFalse((Path(config.logging_path) / "c1").exists())

    async def test_failed_plugin_start_undoes_what_started(self) -> None:
        """A plugin failing to start fails the start, and everything started
        before it is stopped again: the rates timer, the log observer."""
        clock = Clock()
        config = embedded_config(plugins=[{"type": f"{HERE}.FailingPlugin"}])
        junebug = build(clock, config, listen=False)
        with self.assertRaisesRegex(RuntimeError, "plugin cannot start"):
            await junebug.start()
        self.assertEqual(clock.getDelayedCalls(), [])
        self.assertEqual(junebug.stops.parts, [])
        Logger().info("after the failed start", channel_id="c1")
        self.assertFalse((Path(config.logging_path) / "c1").exists())
        await junebug.stop()

    async def test_stop_reverses_start(self) -> None:
        """The stops are recorded in start order and undone in reverse; the
        API refuses requests first."""
        clock = Clock()
        junebug = build(clock, embedded_config(), listen=False)
        await junebug.start()
        self.assertEqual(
            junebug.stops.parts,
            [
                "serving",
                "routers",
                "channels",
                "plugins",
                "rate counters",
                "HTTP delivery",
                "broker",
                "store",
                "HTTP client",
                "channel logs",
            ],
        )
        await junebug.stop()
        self.assertEqual(junebug.stops.parts, [])
        self.assertEqual(clock.getDelayedCalls(), [])

    async def test_api_answers_503_until_started(self) -> None:
        """Before the start has finished (and once stopping began) every
        route but /health and /openapi.json answers 503 NotReady."""
        clock = Clock()
        junebug = build(clock, embedded_config(), listen=False)
        client = StubTreq(junebug.api.resource())

        async def get(path: str) -> tuple[int, Any]:
            response = await client.get("http://jb" + path)
            return response.code, json.loads(await response.content())

        code, body = await get("/channels/")
        self.assertEqual((code, body["description"]), (503, "junebug is starting"))
        self.assertEqual(
            body["result"]["errors"],
            [
                {
                    "type": "NotReady",
                    "message": "Junebug is starting: waiting for start-up",
                }
            ],
        )
        code, body = await get("/health")
        self.assertEqual((code, body["description"]), (503, "unhealthy"))
        self.assertIn("NotReady", [e["type"] for e in body["result"]["errors"]])
        self.assertEqual((await get("/openapi.json"))[0], 200)
        await junebug.start()
        code, body = await get("/channels/")
        self.assertEqual((code, body["result"]), (200, []))
        self.assertEqual((await get("/health"))[0], 200)
        await junebug.stop()
        code, body = await get("/channels/")
        self.assertEqual((code, body["description"]), (503, "junebug is stopping"))


class Proxy(ProxyFactory):
    """A TCP forwarder to a real server that hangs up on every connection
    until :meth:`open` (a backend that is not up yet).  It listens from the
    start, so no other process can take its port meanwhile."""

    is_open = False

    def buildProtocol(self, addr: Any) -> Any:
        return super().buildProtocol(addr) if self.is_open else None

    async def listen(self, test: TestCase) -> int:
        endpoint = TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1")
        listening = await endpoint.listen(self)
        test.addCleanup(listening.stopListening)
        port: int = listening.getHost().port
        return port

    def open(self) -> None:
        self.is_open = True


class BackendsDownAtStartTests(TestCase):
    """jb keeps serving while Redis and RabbitMQ are away at start."""

    def config(self, redis_port: int, amqp_port: int, **extra: Any) -> dict[str, Any]:
        redis = redis_test_address()
        amqp = rabbitmq_test_settings()
        return {
            "embedded": False,
            "redis": {
                "host": "127.0.0.1",
                "port": redis_port,
                "db": redis.db,
                "password": redis.password,
                "key_prefix": f"junebug-test:{uuid.uuid4().hex}",
            },
            "amqp": {
                "hostname": "127.0.0.1",
                "port": amqp_port,
                "vhost": amqp.vhost,
                "username": amqp.username,
                "password": amqp.password,
            },
            **extra,
        }

    def driver(self) -> ApiDriver:
        api = ApiDriver(reactor)
        self.addCleanup(api.stop)
        return api

    async def health_errors(self, api: ApiDriver) -> list[str]:
        code, body, _ = await api.request("GET", "/health")
        if code == 200:
            return []
        return [f"{e['type']}: {e['message']}" for e in body["result"]["errors"]]

    async def test_serves_503_until_the_backends_come(self) -> None:
        """With Redis and RabbitMQ down, the API answers 503 and /health says
        why; once they come up Junebug connects and serves."""
        redis = redis_test_address()
        amqp = rabbitmq_test_settings()
        redis_proxy = Proxy(redis.host, redis.port)
        amqp_proxy = Proxy(amqp.host, amqp.port)
        redis_port = await redis_proxy.listen(self)
        amqp_port = await amqp_proxy.listen(self)
        api = self.driver()
        starting = api.starting(**self.config(redis_port, amqp_port))

        code, body, _ = await api.request("GET", "/channels/")
        self.assertEqual(code, 503)
        self.assertEqual(body["result"]["errors"][0]["type"], "NotReady")
        self.assertEqual(
            await self.health_errors(api),
            [
                "AmqpConnectionError: Not connected to RabbitMQ",
                f"StoreUnavailable: Not connected to Redis at 127.0.0.1:{redis_port}",
                f"NotReady: Junebug is starting: waiting for Redis at 127.0.0.1:"
                f"{redis_port}",
            ],
        )
        redis_proxy.open()
        waiting = f"waiting for RabbitMQ at 127.0.0.1:{amqp_port}"

        async def waiting_for_rabbitmq() -> bool:
            return any(waiting in e for e in await self.health_errors(api))

        await poll_until(waiting_for_rabbitmq)
        amqp_proxy.open()
        await starting
        self.assertEqual(await self.health_errors(api), [])
        code, body, _ = await api.request("GET", "/channels/")
        self.assertEqual((code, body["result"]), (200, []))

    async def test_stop_while_waiting_for_rabbitmq(self) -> None:
        """Stopping while the start waits for RabbitMQ cancels the start and
        stops what had started, without errors."""
        redis = redis_test_address()
        api = self.driver()
        starting = api.starting(**self.config(redis.port, free_port()))
        waiting = "waiting for RabbitMQ"

        async def waiting_for_rabbitmq() -> bool:
            return any(waiting in e for e in await self.health_errors(api))

        await poll_until(waiting_for_rabbitmq)
        assert api.junebug is not None
        await api.junebug.stop()
        with self.assertRaises(CancelledError):
            await starting
        self.assertIsNone(api.junebug.port)
        self.assertEqual(api.junebug.stops.parts, [])

    async def test_jb_stops_normally_while_waiting(self) -> None:
        """``jb`` waiting for Redis serves /health (503, saying why) and a
        SIGTERM meanwhile is a normal stop (exit status 0)."""
        port = free_port()
        logs = tempfile.mkdtemp(prefix="jb-logs-")
        self.addCleanup(shutil.rmtree, logs, True)
        args = ["--logging-path", logs, "--redis-port", str(free_port())]
        jb = JbProcess(reactor, args, port)
        self.addCleanup(jb.stop)
        await jb.start(until="Waiting for Redis")
        client = ApiDriver(reactor)
        self.addCleanup(client.stop)

        async def health() -> Any:
            response = await client.client.get(jb.base + "/health")
            return json.loads(await response.content())

        body = await health()
        self.assertEqual(body["status"], 503)
        self.assertIn(
            "NotReady: Junebug is starting: waiting for Redis at localhost:",
            "; ".join(f"{e['type']}: {e['message']}" for e in body["result"]["errors"]),
        )
        self.assertEqual(await jb.stop(), 0)

    async def test_startup_timeout_keeps_the_old_exit(self) -> None:
        """With startup_timeout set, a backend that does not answer in time
        fails the start, and what had started is stopped."""
        api = self.driver()
        config = self.config(free_port(), free_port(), startup_timeout=0.2)
        junebug = api.build(**config)
        with self.assertRaisesRegex(StartTimeout, r"Redis at 127.0.0.1:\d+ did not"):
            await junebug.start()
        self.assertIsNone(junebug.port)
        self.assertEqual(junebug.stops.parts, [])


class RecordingEndpoint:
    """A server endpoint that records what had started when it was asked to
    listen (a worker's inherited socket stands behind it in ``jb``)."""

    def __init__(self, junebug: Any = None) -> None:
        self.junebug = junebug
        self.seen: list[tuple[str, list[str]]] = []
        self.stopped = 0

    def listen(self, factory: Any) -> Any:
        from twisted.internet.address import IPv4Address
        from twisted.internet.defer import succeed

        assert self.junebug is not None
        self.seen.append((self.junebug.readiness.state, list(self.junebug.stops.parts)))
        endpoint = self

        class Port:
            def getHost(self) -> IPv4Address:
                return IPv4Address("TCP", "127.0.0.1", 4321)

            def stopListening(self) -> None:
                endpoint.stopped += 1

        return succeed(Port())


class ListenOnTests(TestCase):
    """A worker of ``jb --workers`` serves on the endpoint it is given: at
    once (answering 503 until started), or, replacing a worker that died,
    only once everything has started."""

    async def started(self, when_ready: bool) -> tuple[Any, RecordingEndpoint]:
        endpoint = RecordingEndpoint()
        junebug = build(
            Clock(),
            embedded_config(),
            listen_on=endpoint,  # type: ignore[arg-type]
            listen_when_ready=when_ready,
        )
        endpoint.junebug = junebug
        await junebug.start()
        self.addCleanup(junebug.stop)
        return junebug, endpoint

    async def test_listens_first_by_default(self) -> None:
        junebug, endpoint = await self.started(when_ready=False)
        self.assertEqual(endpoint.seen, [("starting", ["channel logs"])])
        await junebug.stop()
        self.assertEqual(endpoint.stopped, 1)

    async def test_listens_once_ready_and_stops_listening_after_the_drain(
        self,
    ) -> None:
        junebug, endpoint = await self.started(when_ready=True)
        ((state, started),) = endpoint.seen
        self.assertEqual(state, "starting")
        self.assertEqual(started[:2], ["routers", "channels"])
        # The drain ("serving") is undone before the port closes.
        self.assertEqual(junebug.stops.parts[:2], ["serving", "API port"])
        await junebug.stop()
        self.assertEqual(endpoint.stopped, 1)
