"""SIGTERM under load: a real ``jb`` with an SMPP channel to a test SMSC,
clients sending all the while.  Every message answered 201 reaches the SMSC
(after a restart if it was still queued) and jb exits 0 within
``shutdown_timeout``."""

from __future__ import annotations

import json
import signal
import tempfile
import time

from treq.client import HTTPClient
from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults
from twisted.trial.unittest import TestCase
from twisted.web.client import Agent, HTTPConnectionPool

from junebug.testing.http_sink import HttpSink
from junebug.testing.polling import wait_until
from junebug.testing.rabbitmq import rabbitmq_test_settings
from junebug.testing.redis import start_redis_fixture
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
