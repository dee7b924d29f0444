"""``rate_limit_count`` against the real SMSC peer, Redis and RabbitMQ.

Messages go in through the HTTP API of a Junebug on the real backends (a
per-test Redis key prefix, the test run's RabbitMQ vhost); the node peer
records when each ``submit_sm`` came in, and every sliding window is checked
on those times.  Sends reach the peer a little after Redis granted them, by a
delay that varies: ``rate_limit_margin`` covers that.  Its default (0.05 s)
is not enough on a machine this loaded (two cores for four test workers
and the brokers: a process, the peer's too, may wait a few hundred ms for a
core; 0.25 s let 53 through, 0.5 s 51), so these tests use :data:`MARGIN`.
"""

from __future__ import annotations

import tempfile
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults
from twisted.trial.unittest import TestCase

from junebug.testing.api import ApiDriver
from junebug.testing.polling import poll_until, wait_until
from junebug.testing.rabbitmq import rabbitmq_test_settings
from junebug.testing.redis import RedisFixture, start_redis_fixture
from junebug.tests.support.smsc import SmscPeer

#: The ``rate_limit_margin`` of these tests (seconds).
MARGIN = 1.0
#: API requests sent at once.
SENDERS = 8


def most_in_a_window(times: list[float], window: float) -> int:
    """The most of ``times`` in any interval ``window`` long."""
    ordered = sorted(times)
    most = 0
    start = 0
    for end, at in enumerate(ordered):
        while at - ordered[start] >= window:
            start += 1
        most = max(most, end - start + 1)
    return most


class RateLimitedSmppTests(TestCase):
    timeout = 120

    async def setUp(self) -> None:
        self.peer = SmscPeer(reactor, "node", mode="ack-only")
        await self.peer.start()
        self.addCleanup(self.peer.stop)
        self.redis: RedisFixture = await start_redis_fixture(self, reactor)

    async def junebug(self) -> ApiDriver:
        """A Junebug on the real backends; two of them share the budget."""
        redis = self.redis.address
        amqp = rabbitmq_test_settings()
        api = ApiDriver(reactor)
        self.addCleanup(api.stop)
        await api.start(
            embedded=False,
            rate_limit_margin=MARGIN,
            logging_path=tempfile.mkdtemp(prefix="junebug-logs-"),
            redis={
                "host": redis.host,
                "port": redis.port,
                "db": redis.db,
                "password": redis.password,
                "key_prefix": self.redis.prefix,
            },
            amqp={
                "hostname": amqp.host,
                "port": amqp.port,
                "vhost": amqp.vhost,
                "username": amqp.username,
                "password": amqp.password,
            },
        )
        return api

    async def create_channel(self, api: ApiDriver, count: int, window: int) -> str:
        code, created, _ = await api.request(
            "POST",
            "/channels/",
            {
                "type": "smpp",
                "mo_url": "http://127.0.0.1:1/mo",
                "rate_limit_count": count,
                "rate_limit_window": window,
                "config": {
                    "twisted_endpoint": self.peer.endpoint,
                    "system_id": "esme1",
                    "password": "secret",
                    "initial_reconnect_delay": 0.1,
                    "window_size": 50,
                },
            },
        )
        self.assertEqual(code, 201, created)
        return str(created["result"]["id"])

    async def send(
        self, api: ApiDriver, cid: str, contents: list[str], senders: int = SENDERS
    ) -> None:
        """Post every message, ``senders`` requests at a time."""
        pending = list(reversed(contents))

        async def sender() -> None:
            while pending:
                content = pending.pop()
                code, sent, _ = await api.request(
                    "POST",
                    f"/channels/{cid}/messages/",
                    {"to": "27820000001", "from": "1234", "content": content},
                )
                self.assertEqual(code, 201, sent)

        await gatherResults(
            [Deferred.fromCoroutine(sender()) for _ in range(senders)],
            consumeErrors=True,
        )

    async def status(self, api: ApiDriver, cid: str) -> dict[str, Any]:
        _, found, _ = await api.request("GET", f"/channels/{cid}")
        return dict(found["result"]["status"])

    def arrived(self) -> list[dict[str, Any]]:
        """The test's submit_sm (the parts of a long message too), in order."""
        return [
            s
            for s in self.peer.submits
            if s["message"].startswith(("rl-", "x")) or s["udh"]
        ]

    async def test_limit_holds_at_the_smsc_and_nothing_is_lost(self) -> None:
        """The issue's figures, 10 per second and 200 messages: at most 10
        submit_sm in any second at the SMSC while the rest wait, all 200
        arrive, in the order they were accepted; meanwhile the status says
        the channel is held back, and ok once drained.  (With MARGIN the
        budget is 10 per 2 s: about 40 s.)"""
        api = await self.junebug()
        cid = await self.create_channel(api, 10, 1)
        await self.peer.wait_for_line("bind_transceiver ok")
        contents = [f"rl-{n:03}" for n in range(200)]
        await self.send(api, cid, contents, senders=1)  # accepted in order
        status = await self.status(api, cid)
        self.assertEqual(status["rate_limit"], {"count": 10, "window": 1})
        component = status["components"]["rate_limit"]
        self.assertEqual(component["status"], "degraded", status)
        self.assertIn("Held back by rate_limit_count", component["message"])
        await wait_until(lambda: len(self.arrived()) >= 200, timeout=90)
        submits = self.arrived()
        self.assertEqual([s["message"] for s in submits], contents)
        times = [s["t"] for s in submits]
        self.assertLessEqual(most_in_a_window(times, 1.0), 10)
        self.assertGreaterEqual(max(times) - min(times), 19)

        async def ok_again() -> bool:
            found = await self.status(api, cid)
            return bool(found["components"]["rate_limit"]["status"] == "ok")

        await poll_until(ok_again, timeout=10)

    async def test_a_three_part_message_costs_three(self) -> None:
        """3 per second: a 3-part message uses the second up, so the next
        message reaches the SMSC a window after the first part."""
        api = await self.junebug()
        cid = await self.create_channel(api, 3, 1)
        await self.peer.wait_for_line("bind_transceiver ok")
        await self.send(api, cid, ["rl-long " + "x" * 300])
        await wait_until(lambda: len(self.arrived()) >= 3)
        await self.send(api, cid, ["rl-short"])
        await wait_until(lambda: len(self.arrived()) >= 4)
        parts, short = self.arrived()[:3], self.arrived()[3]
        self.assertTrue(all(len(p["udh"]) for p in parts), parts)
        self.assertEqual(short["message"], "rl-short")
        self.assertGreaterEqual(short["t"] - parts[0]["t"], 1.0)

    async def test_two_processes_share_one_budget(self) -> None:
        """Two Junebugs on the same Redis and vhost are one gateway: the
        channel binds in one of them only (its lease, docs/cluster.rst), MT
        posted through both reaches the SMSC within 20 per second, and the
        budget is the channel's, in Redis, wherever it runs."""
        first = await self.junebug()
        cid = await self.create_channel(first, 20, 1)
        second = await self.junebug()  # forwards for the stored channel
        await wait_until(
            lambda: first.transport(cid) is not None and first.transport(cid).is_bound,
            timeout=20,
        )
        self.assertIsNone(second.transport(cid))  # never a second bind
        contents = [f"rl-{n:03}" for n in range(80)]
        await gatherResults(
            [
                Deferred.fromCoroutine(self.send(first, cid, contents[:40])),
                Deferred.fromCoroutine(self.send(second, cid, contents[40:])),
            ]
        )
        await wait_until(lambda: len(self.arrived()) >= 80, timeout=60)
        submits = self.arrived()
        self.assertEqual(sorted(s["message"] for s in submits), contents)
        self.assertLessEqual(most_in_a_window([s["t"] for s in submits], 1.0), 20)

        def acked() -> list[float]:
            return [
                api.junebug.metrics.registry.get_sample_value(
                    "junebug_messages_sent_total",
                    {"channel_id": cid, "channel_type": "smpp"},
                )
                or 0
                for api in (first, second)
                if api.junebug is not None
            ]

        await wait_until(lambda: sum(acked()) == 80)
        self.assertEqual(acked(), [80, 0], "only the owner sends")
