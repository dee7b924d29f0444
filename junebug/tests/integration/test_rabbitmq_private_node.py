"""RabbitMQBroker against a RabbitMQ node of the test's own: a memory alarm
(``connection.blocked``), TLS, and several hosts tried in order.

Each test class starts one private node (:mod:`junebug.tests.rabbitmq_node`),
so setting off its alarm cannot disturb the shared RabbitMQ other runs use.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from twisted.internet import reactor
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from junebug.amqp.rabbitmq import AmqpSettings, RabbitMQBroker, TlsSettings
from junebug.errors import BrokerBlocked, BrokerError, PublishOutcomeUnknown
from junebug.messages import Message, user_message
from junebug.tests.rabbitmq_node import (
    PrivateRabbitMQ,
    rabbitmq_scripts,
    self_signed_certificate,
)
from junebug.tests.support.process import free_port

T = TypeVar("T")

TIMEOUT = 30.0


async def within(awaitable: Awaitable[T], timeout: float = TIMEOUT) -> T:
    d: Deferred[T] = (
        awaitable if isinstance(awaitable, Deferred) else ensureDeferred(awaitable)
    )
    d.addTimeout(timeout, reactor)
    return await d


async def until(condition: Callable[[], bool]) -> None:
    while not condition():
        await deferLater(reactor, 0.05, lambda: None)


def message(content: str) -> Message:
    return user_message(
        to_addr="+27820000000",
        from_addr="12345",
        transport_name="private-node-test",
        content=content,
    )


class PrivateNodeCase(TestCase):
    timeout = 240

    async def private_node(self, *, tls: bool = False) -> PrivateRabbitMQ:
        """A node of this test's own, stopped and removed afterwards."""
        if rabbitmq_scripts() is None:
            self.fail("these tests need RabbitMQ installed")
        node = PrivateRabbitMQ(reactor, tls=tls)
        self.addCleanup(node.stop)
        await node.start()
        return node

    async def broker(self, settings: AmqpSettings) -> RabbitMQBroker:
        broker = RabbitMQBroker(reactor, settings)
        self.addCleanup(broker.close)
        await within(broker.when_connected(timeout=TIMEOUT))
        return broker


class MemoryAlarmTests(PrivateNodeCase):
    async def test_blocked_publishing_is_refused_and_a_written_one_unknown(
        self,
    ) -> None:
        """#12.11: while RabbitMQ blocks publishing, a publish already written
        is 'outcome unknown' (it is delivered when the alarm clears), and
        later ones are refused at once without being written."""
        node = await self.private_node()
        broker = await self.broker(node.settings(operation_timeout=2.0))
        await within(broker.declare_queue("alarm"))
        await within(broker.publish("alarm", message("before")))

        await node.memory_alarm(True)
        # RabbitMQ stops reading once we publish: this one is on the wire.
        with self.assertRaises(PublishOutcomeUnknown):
            await within(broker.publish("alarm", message("written")))
        await within(until(lambda: broker.blocked_reason() is not None))
        self.assertIn("memory", broker.blocked_reason() or "")
        started = reactor.seconds()
        with self.assertRaises(BrokerBlocked):
            await within(broker.publish("alarm", message("refused")))
        self.assertLess(reactor.seconds() - started, 1.0)  # at once

        await node.memory_alarm(False)
        await within(until(lambda: broker.blocked_reason() is None))
        contents: list[str] = []

        async def take(received: Message) -> None:
            contents.append(received["content"])

        await within(broker.drain("alarm", take))
        # The "outcome unknown" message did arrive; the refused one did not.
        self.assertEqual(contents, ["before", "written"])


class TlsAndHostsTests(PrivateNodeCase):
    async def round_trip(self, broker: RabbitMQBroker, queue: str) -> None:
        await within(broker.declare_queue(queue))
        await within(broker.publish(queue, message("hello")))
        got: list[str] = []

        async def take(received: Message) -> None:
            got.append(received["content"])

        await within(broker.drain(queue, take))
        self.assertEqual(got, ["hello"])

    async def refused(self, settings: AmqpSettings) -> BrokerError:
        broker = RabbitMQBroker(reactor, settings)
        self.addCleanup(broker.close)
        with self.assertRaises(BrokerError) as caught:
            await within(broker.when_connected(timeout=3.0))
        return caught.exception

    async def test_tls_and_several_hosts(self) -> None:
        """amqps:// with the node's certificate (settings and URL), refused
        with another authority or without TLS; several hosts in order."""
        node = await self.private_node(tls=True)
        assert node.tls_port is not None
        await self.round_trip(await self.broker(node.tls_settings()), "tls")

        url = (
            f"amqps://guest:guest@localhost:{node.tls_port}/"
            f"?cacertfile={node.certificate}&heartbeat=5"
        )
        broker = await self.broker(AmqpSettings.from_url(url))
        assert broker._live is not None
        self.assertEqual(broker._live.protocol.amqp.heartbeat, 5)
        await self.round_trip(broker, "tls-url")

        other = node.directory / "other"
        other.mkdir()
        stranger = self_signed_certificate(other)
        error = await self.refused(
            node.tls_settings(tls=TlsSettings(ca_file=str(stranger)))
        )
        self.assertIn("could not connect", str(error))
        await self.refused(AmqpSettings(port=node.tls_port, connect_timeout=2.0))

        url = f"amqp://guest:guest@127.0.0.1:{free_port()},127.0.0.1:{node.port}/"
        await self.round_trip(await self.broker(AmqpSettings.from_url(url)), "hosts")
