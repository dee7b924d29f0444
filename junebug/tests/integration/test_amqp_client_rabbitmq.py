"""The AMQP client (junebug.amqp.client) against the real RabbitMQ, for what
a scripted broker cannot show: the order RabbitMQ really answers in."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

from twisted.internet import reactor
from twisted.internet.defer import gatherResults
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.trial.unittest import TestCase

from junebug.amqp.client import AmqpClient
from junebug.testing.rabbitmq import rabbitmq_test_settings

TIMEOUT = 30.0


class RealBrokerOrderTests(TestCase):
    timeout = 60

    async def connect(self) -> AmqpClient:
        settings = rabbitmq_test_settings()
        client = AmqpClient(
            reactor,
            vhost=settings.vhost,
            username=settings.username,
            password=settings.password,
        )
        endpoint = TCP4ClientEndpoint(reactor, settings.host, settings.port)
        await connectProtocol(endpoint, client).addTimeout(TIMEOUT, reactor)
        self.addCleanup(client.close)
        await client.ready.addTimeout(TIMEOUT, reactor)
        return client

    async def test_many_consumers_asked_for_at_once_on_one_channel(self) -> None:
        """basic.qos and basic.consume for 20 queues asked for back to back
        on one channel all succeed.  (Pipelined, RabbitMQ 3.10 answered every
        qos before the consume-oks, a protocol error for the client.)"""
        client = await self.connect()
        channel = await client.channel()
        queues = [f"jb-order-{uuid4().hex[:8]}-{i}" for i in range(20)]
        for queue in queues:
            await channel.queue_declare(queue)
        for queue in queues:
            self.addCleanup(self.delete, client, queue)
        asked: list[Any] = []
        for i, queue in enumerate(queues):
            asked.append(channel.basic_qos(prefetch_count=i + 1))
            asked.append(channel.basic_consume(queue, lambda d: None, lambda e: None))
        results = await gatherResults(asked).addTimeout(TIMEOUT, reactor)
        self.assertEqual(len(set(results[1::2])), len(queues))  # consumer tags
        self.assertTrue(client.opened, client.close_reason)

    async def delete(self, client: AmqpClient, queue: str) -> None:
        if not client.opened:
            return
        channel = await client.channel()
        await channel.queue_delete(queue)
        await channel.close()
