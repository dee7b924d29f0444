"""Deleting channels, routers and destinations deletes their queues, checked on
the real RabbitMQ (a passive declare per queue) of this machine, with an
in-process Junebug in its own vhost and Redis key prefix."""

from __future__ import annotations

import tempfile
from typing import Any

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from junebug.amqp import topology
from junebug.testing.api import ApiDriver
from junebug.testing.rabbitmq import queue_exists, rabbitmq_test_settings
from junebug.testing.redis import start_redis_fixture


class QueueCleanupTests(TestCase):
    timeout = 60

    async def setUp(self) -> None:
        redis = await start_redis_fixture(self, reactor)
        self.settings = rabbitmq_test_settings()
        self.api = ApiDriver(reactor)
        self.addCleanup(self.api.stop)
        await self.api.start(
            embedded=False,
            redis={
                "host": redis.address.host,
                "port": redis.address.port,
                "db": redis.address.db,
                "password": redis.address.password,
                "key_prefix": redis.prefix,
            },
            amqp={
                "hostname": self.settings.host,
                "port": self.settings.port,
                "vhost": self.settings.vhost,
                "username": self.settings.username,
                "password": self.settings.password,
            },
            logging_path=tempfile.mkdtemp(prefix="junebug-logs-"),
        )

    async def existing(self, queues: list[str]) -> list[str]:
        return [q for q in queues if await queue_exists(reactor, self.settings, q)]

    async def create(self, path: str, body: dict[str, Any]) -> str:
        code, created, _ = await self.api.request("POST", path, body)
        self.assertEqual(code, 201, created)
        new_id: str = created["result"]["id"]
        return new_id

    async def test_deleted_channel_leaves_no_queue(self) -> None:
        cid = await self.create("/channels/", {"type": "fake", "config": {}})
        await self.api.transport(cid).receive("waits for a router")
        main = [
            topology.inbound(cid),
            topology.event(cid),
            topology.outbound(cid),
            topology.status(cid),
        ]
        self.assertEqual(await self.existing(main), main)
        code, _, _ = await self.api.request("DELETE", f"/channels/{cid}")
        self.assertEqual(code, 200)
        self.assertEqual(
            await self.existing(topology.owned_queues(cid, with_status=True)), []
        )

    async def test_deleted_destination_and_router_leave_no_queue(self) -> None:
        cid = await self.create("/channels/", {"type": "fake", "config": {}})
        rid = await self.create(
            "/routers/", {"type": "from_address", "config": {"channel": cid}}
        )
        destinations = f"/routers/{rid}/destinations/"
        first = await self.create(destinations, {"config": {"regular_expression": "1"}})
        second = await self.create(destinations, {"config": {"default": True}})
        for did in (first, second):
            self.assertEqual(
                await self.existing([topology.inbound(did), topology.event(did)]),
                [topology.inbound(did), topology.event(did)],
            )
        code, _, _ = await self.api.request("DELETE", f"{destinations}{first}")
        self.assertEqual(code, 200)
        self.assertEqual(
            await self.existing(topology.owned_queues(first, with_status=False)), []
        )
        self.assertNotEqual(await self.existing([topology.inbound(second)]), [])
        code, _, _ = await self.api.request("DELETE", f"/routers/{rid}")
        self.assertEqual(code, 200)
        self.assertEqual(
            await self.existing(topology.owned_queues(second, with_status=False)), []
        )
