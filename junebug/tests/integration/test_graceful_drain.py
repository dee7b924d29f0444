"""SIGTERM to a real ``jb``: under load (an SMPP channel to a test SMSC,
clients sending all the while) every message answered 201 reaches the SMSC
(after a restart if it was still queued) and jb exits 0 within
``shutdown_timeout``; a request held in flight is answered before jb exits;
a second SIGTERM exits at once."""

from __future__ import annotations

import json
import signal
import tempfile
import time
import uuid
from typing import Any

from treq.client import HTTPClient
from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.task import deferLater
from twisted.protocols.portforward import ProxyFactory, ProxyServer
from twisted.trial.unittest import TestCase
from twisted.web.client import Agent, HTTPConnectionPool, ResponseNeverReceived

from junebug.testing.http_sink import HttpSink
from junebug.testing.polling import poll_until, wait_until
from junebug.testing.rabbitmq import rabbitmq_test_settings
from junebug.testing.redis import redis_test_address, start_redis_fixture
from junebug.tests.support.process import JbProcess, free_port
from junebug.tests.support.smsc import SmscPeer

SHUTDOWN_TIMEOUT = 10.0
SENDERS = 4


class Senders:
    """Clients posting messages to one channel until told to stop or refused."""

    def __init__(self, base: str, channel_id: str) -> None:
        self.url = f"{base}/channels/{channel_id}/messages/"
        self.pool = HTTPConnectionPool(reactor, persistent=False)
        self.client = HTTPClient(Agent(reactor, pool=self.pool))
        self.accepted: list[str] = []
        self.answers: dict[int, int] = {}
        self.retry_after: set[str] = set()
        self.sent = 0
        self.going = True

    async def sender(self) -> None:
        while self.going:
            self.sent += 1
            content = f"drain-{self.sent}"
            try:
                response = await self.client.post(
                    self.url,
                    data=json.dumps(
                        {"to": "27820000001", "from": "1234", "content": content}
                    ).encode(),
                )
                await response.content()
            except Exception:
                return  # the port has closed: jb is going
            self.answers[response.code] = self.answers.get(response.code, 0) + 1
            if response.code == 201:
                self.accepted.append(content)
            elif response.code == 503:
                self.retry_after.update(
                    value.decode()
                    for value in response.headers.getRawHeaders(b"Retry-After", [])
                )


class GracefulDrainTests(TestCase):
    timeout = 180

    async def test_sigterm_under_load_loses_nothing(self) -> None:
        peer = SmscPeer(reactor, "node", mode="dlr")
        await peer.start()
        self.addCleanup(peer.stop)
        sink = HttpSink(reactor)
        sink_base = await sink.start()
        self.addCleanup(sink.stop)
        redis = await start_redis_fixture(self, reactor)
        args = [
            "--redis-key-prefix",
            redis.prefix,
            "--amqp-vhost",
            rabbitmq_test_settings().vhost,
            "--logging-path",
            tempfile.mkdtemp(prefix="jb-logs-"),
            "--shutdown-timeout",
            str(SHUTDOWN_TIMEOUT),
        ]
        jb = JbProcess(reactor, args, free_port())
        await jb.start()
        self.addCleanup(jb.stop)
        admin = Senders(jb.base, "")
        self.addCleanup(admin.pool.closeCachedConnections)
        response = await admin.client.post(
            jb.base + "/channels/",
            data=json.dumps(
                {
                    "type": "smpp",
                    "mo_url": sink_base + "/mo",
                    "config": {
                        "twisted_endpoint": peer.endpoint,
                        "system_id": "esme1",
                        "password": "secret",
                        "initial_reconnect_delay": 0.1,
                    },
                }
            ).encode(),
        )
        created = json.loads(await response.content())
        self.assertEqual(response.code, 201, created)
        channel_id = created["result"]["id"]
        await wait_until(lambda: any("bind_" in line for line in peer.lines))

        senders = Senders(jb.base, channel_id)
        self.addCleanup(senders.pool.closeCachedConnections)
        running = [senders.sender() for _ in range(SENDERS)]
        sending = gatherResults([Deferred.fromCoroutine(s) for s in running])
        await wait_until(lambda: len(senders.accepted) >= 30, timeout=30)
        began = time.monotonic()
        status = await jb.stop(signal.SIGTERM, timeout=SHUTDOWN_TIMEOUT + 15)
        took = time.monotonic() - began
        senders.going = False
        await sending
        self.assertEqual(status, 0, jb.output)
        self.assertLess(took, SHUTDOWN_TIMEOUT + 5, jb.output)
        # Each answer is a 201 (sent) or a 503 (refused while draining).
        self.assertLessEqual(set(senders.answers), {201, 503}, senders.answers)
        if 503 in senders.answers:
            self.assertEqual(senders.retry_after, {"5"})

        def missing() -> set[str]:
            arrived = {submit["message"] for submit in peer.submits}
            return set(senders.accepted) - arrived

        if missing():
            # Still queued in RabbitMQ: the next jb sends them.
            jb = JbProcess(reactor, args, free_port())
            await jb.start()
            self.addCleanup(jb.stop)
        await wait_until(lambda: not missing(), timeout=30)
        self.assertGreaterEqual(len(senders.accepted), 30)


class HoldingServer(ProxyServer):
    """Forwards what jb sends to Redis, except while its factory holds it."""

    factory: HoldingProxy

    def dataReceived(self, data: bytes) -> None:
        if self.factory.holding:
            self.factory.held.append((self, data))
            return
        super().dataReceived(data)


class HoldingProxy(ProxyFactory):
    """A forwarder to the test Redis that can hold jb's commands back, so a
    request stays in flight for as long as the test wants."""

    protocol = HoldingServer

    def __init__(self, host: str, port: int) -> None:
        super().__init__(host, port)
        self.holding = False
        self.held: list[tuple[HoldingServer, bytes]] = []

    async def listen(self, test: TestCase) -> int:
        endpoint = TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1")
        listening = await endpoint.listen(self)
        test.addCleanup(listening.stopListening)
        port: int = listening.getHost().port
        return port

    def release(self) -> None:
        self.holding = False
        held, self.held = self.held, []
        for server, data in held:
            if server.transport is not None and server.peer is not None:
                ProxyServer.dataReceived(server, data)


class DrainInFlightTests(TestCase):
    """A request held in flight (its Redis command held back) during SIGTERM."""

    timeout = 120

    async def start_jb(self) -> tuple[JbProcess, HoldingProxy, Senders]:
        redis = redis_test_address()
        proxy = HoldingProxy(redis.host, redis.port)
        port = await proxy.listen(self)
        self.addCleanup(proxy.release)
        args = [
            "--redis-host",
            "127.0.0.1",
            "--redis-port",
            str(port),
            "--redis-db",
            str(redis.db),
            "--redis-key-prefix",
            f"junebug-test:{uuid.uuid4().hex}",
            "--amqp-vhost",
            rabbitmq_test_settings().vhost,
            "--logging-path",
            tempfile.mkdtemp(prefix="jb-logs-"),
            "--shutdown-timeout",
            "20",
        ]
        if redis.password:
            args += ["--redis-password", redis.password]
        jb = JbProcess(reactor, args, free_port())
        await jb.start()
        self.addCleanup(jb.kill)
        http = Senders(jb.base, "")
        self.addCleanup(http.pool.closeCachedConnections)
        return jb, proxy, http

    async def get(self, http: Senders, url: str) -> Any:
        return await http.client.get(url)

    async def hold_a_request_and_signal(
        self, jb: JbProcess, proxy: HoldingProxy, http: Senders
    ) -> Deferred[Any]:
        """A GET /channels/ waiting for Redis, then SIGTERM; returns once new
        requests are refused (503 with Retry-After): the drain has begun."""
        proxy.holding = True
        stuck = Deferred.fromCoroutine(self.get(http, jb.base + "/channels/"))
        await wait_until(lambda: proxy.held)
        jb.send_signal(signal.SIGTERM)

        async def refused() -> bool:
            response = await self.get(http, jb.base + "/channels/")
            await response.content()
            return response.code == 503 and response.headers.getRawHeaders(
                b"Retry-After"
            ) == [b"5"]

        await poll_until(refused)
        live = await self.get(http, jb.base + "/health/live")
        self.assertEqual(
            json.loads(await live.content())["result"], {"state": "stopping"}
        )
        self.assertFalse(stuck.called)
        return stuck

    async def test_request_in_flight_finishes_before_exit(self) -> None:
        """jb waits for the request in flight (Redis stays open for it), which
        is answered 200; then it exits 0."""
        jb, proxy, http = await self.start_jb()
        stuck = await self.hold_a_request_and_signal(jb, proxy, http)
        await deferLater(reactor, 0.5, lambda: None)
        self.assertFalse(jb.ended, jb.output)
        proxy.release()
        response = await stuck
        self.assertEqual(response.code, 200)
        self.assertEqual(json.loads(await response.content())["result"], [])
        self.assertEqual(await jb.exited(timeout=20), 0, jb.output)

    async def test_second_sigterm_exits_at_once(self) -> None:
        jb, proxy, http = await self.start_jb()
        stuck = await self.hold_a_request_and_signal(jb, proxy, http)
        began = time.monotonic()
        self.assertEqual(await jb.stop(signal.SIGTERM, timeout=10), 1, jb.output)
        self.assertLess(time.monotonic() - began, 5)
        self.assertIn("second SIGTERM", jb.output)
        # The request in flight is cut off with the process.
        await self.assertFailure(stuck, ResponseNeverReceived)
