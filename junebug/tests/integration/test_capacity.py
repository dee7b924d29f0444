"""More channels than one AMQP connection has channel numbers for.

A whole in-process Junebug against the real Redis and RabbitMQ of this
machine (own key prefix and vhost), with ``amqp.channel_max`` lowered to 16 so
that a dozen channels (four consumers each) are past it: every channel is
created, and every one takes MT messages to its transport and forwards MO
messages and events to its URLs.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from junebug.testing.api import ApiDriver
from junebug.testing.http_sink import HttpSink, Received
from junebug.testing.polling import wait_until
from junebug.testing.rabbitmq import rabbitmq_test_settings
from junebug.testing.redis import RedisFixture, redis_test_address, start_redis_fixture
from junebug.testing.transports import FakeTransport

CHANNEL_MAX = 16
CHANNELS = 12  # 4 consumers each: 48 consumers on 16 channel numbers


class CapacityTests(TestCase):
    timeout = 120

    async def setUp(self) -> None:  # type: ignore[override]
        self.sink = HttpSink(reactor)
        self.sink_base = await self.sink.start()
        self.addCleanup(self.sink.stop)
        self.redis: RedisFixture = await start_redis_fixture(self, reactor)
        address = redis_test_address()
        self.api = ApiDriver(reactor)
        self.addCleanup(self.api.stop)
        self.junebug = await self.api.start(
            embedded=False,
            redis={
                "host": address.host,
                "port": address.port,
                "db": address.db,
                "password": address.password,
                "key_prefix": self.redis.prefix,
            },
            amqp={
                "vhost": rabbitmq_test_settings().vhost,
                "channel_max": CHANNEL_MAX,
            },
        )

    def transport(self, channel_id: str) -> FakeTransport:
        found = self.api.transport(channel_id)
        assert isinstance(found, FakeTransport)
        return found

    async def posts(self, count: int) -> list[Received]:
        return [await self.sink.next(timeout=30) for _ in range(count)]

    async def test_channels_past_one_connections_channel_max(self) -> None:
        ids: list[str] = []
        for n in range(CHANNELS):
            code, body, _ = await self.api.request(
                "POST",
                "/channels/",
                {
                    "type": "fake",
                    "config": {"number": n},
                    "mo_url": f"{self.sink_base}/mo/{n}",
                },
            )
            self.assertEqual(code, 201, body)
            self.assertIsNotNone(body["result"]["status"])
            ids.append(body["result"]["id"])
        broker: Any = self.junebug.broker
        amqp = broker._live.protocol.amqp
        self.assertEqual(amqp.channel_max, CHANNEL_MAX)
        self.assertLessEqual(amqp.open_channels, CHANNEL_MAX)
        code, body, _ = await self.api.request("GET", "/health")
        self.assertEqual(code, 200, body)

        # MT: every channel's transport gets its message, and its ack event
        # comes back to the event_url.
        for n, cid in enumerate(ids):
            code, body, _ = await self.api.request(
                "POST",
                f"/channels/{cid}/messages/",
                {
                    "to": "+27820000000",
                    "content": f"mt {n}",
                    "event_url": f"{self.sink_base}/event/{n}",
                },
            )
            self.assertEqual(code, 201, body)
        for cid in ids:
            await wait_until(lambda cid=cid: self.transport(cid).outbound, timeout=30)
        self.assertEqual(
            [self.transport(cid).outbound[0]["content"] for cid in ids],
            [f"mt {n}" for n in range(CHANNELS)],
        )
        events = await self.posts(CHANNELS)
        self.assertEqual(
            sorted(e.path for e in events),
            sorted(f"/event/{n}" for n in range(CHANNELS)),
        )
        self.assertTrue(all(e.body["event_type"] == "submitted" for e in events))

        # MO: every channel forwards what its transport publishes.
        for n, cid in enumerate(ids):
            await self.transport(cid).receive(f"mo {n}")
        mos = await self.posts(CHANNELS)
        self.assertEqual(
            sorted((m.path, m.body["content"]) for m in mos),
            sorted((f"/mo/{n}", f"mo {n}") for n in range(CHANNELS)),
        )
