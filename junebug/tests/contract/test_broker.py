"""The Broker contract (:mod:`junebug.amqp.broker`), kept by both brokers.

:class:`BrokerContract` holds the tests; :class:`MemoryBrokerTests` and
:class:`RabbitMQBrokerTests` run them against :class:`MemoryBroker` and against
the real RabbitMQ named by ``JUNEBUG_TEST_AMQP_URL`` (default
``amqp://guest:guest@127.0.0.1:5672/``), in a throw-away vhost.  An unreachable
RabbitMQ fails the RabbitMQ tests.

Every test uses its own queue names and deletes its queues afterwards.  Nothing
sleeps: tests await Deferreds, each bounded by :func:`within`.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from uuid import uuid4

from twisted.internet import reactor
from twisted.internet.defer import Deferred, DeferredQueue, ensureDeferred, fail
from twisted.internet.defer import TimeoutError as DeferredTimeoutError
from twisted.internet.task import deferLater
from twisted.internet.utils import getProcessOutputAndValue
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import TestCase

from junebug.amqp import policy, topology
from junebug.amqp.lease import check_delivery, current_lease
from junebug.amqp.memory import MemoryBroker
from junebug.amqp.rabbitmq import RabbitMQBroker
from junebug.errors import (
    BrokerError,
    DeliveryLost,
    StoreUnavailable,
    TemporaryFailure,
)
from junebug.messages import Message, from_json, user_message
from junebug.testing.polling import poll_until
from junebug.testing.rabbitmq import (
    peek_message,
    queue_exists,
    queue_is_durable,
    rabbitmq_test_settings,
)

T = TypeVar("T")

TIMEOUT = 10.0


async def within(awaitable: Awaitable[T], timeout: float = TIMEOUT) -> T:
    """Await ``awaitable``; Twisted's ``TimeoutError`` after ``timeout``."""
    d: Deferred[T] = (
        awaitable if isinstance(awaitable, Deferred) else ensureDeferred(awaitable)
    )
    d.addTimeout(timeout, reactor)
    return await d


def message(content: str, **extra: Any) -> Message:
    return user_message(
        to_addr="+27820000000",
        from_addr="12345",
        transport_name="contract-test",
        content=content,
        **extra,
    )


class HandlerError(Exception):
    """A handler failure the tests cause on purpose."""


class Inbox:
    """A handler that records messages and lets tests await each arrival."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self._arrivals: DeferredQueue[Message] = DeferredQueue()

    async def handler(self, msg: Message) -> None:
        self.messages.append(msg)
        # Wake the test only after this handler has returned (and acked).
        reactor.callLater(0, self._arrivals.put, msg)

    async def next(self, timeout: float = TIMEOUT) -> Message:
        return await within(self._arrivals.get(), timeout)


class BrokerContract(TestCase):
    """The tests every Broker must pass; subclasses provide the broker."""

    __test__ = False  # pytest: collect the subclasses only
    skip: str | None = "abstract: run through its subclasses"  # trial
    timeout = 30

    broker: Any

    # -- provided by subclasses ------------------------------------------------

    async def create_broker(self) -> Any:
        """A new connected broker."""
        raise NotImplementedError

    async def create_disconnected_broker(self) -> Any:
        """A new broker that is not connected (and will not be soon)."""
        raise NotImplementedError

    async def lose_connection(self, broker: Any) -> None:
        """Make ``broker`` lose its connection."""
        raise NotImplementedError

    def restore_connection(self, broker: Any) -> None:
        """Let ``broker`` connect again (if it does not by itself)."""

    async def assert_durable(self, queue: str) -> None:
        """Check that ``queue`` exists and survives a broker restart."""
        raise NotImplementedError

    async def queue_exists(self, queue: str) -> bool:
        """Whether the broker has ``queue`` (asked without declaring it)."""
        raise NotImplementedError

    # -- helpers ----------------------------------------------------------------

    async def setUp(self) -> None:
        self.broker = await self.new_broker()

    async def new_broker(self) -> Any:
        broker = await self.create_broker()
        self.addCleanup(broker.close)
        return broker

    def queue_name(self, label: str = "q") -> str:
        """A fresh queue name; it and its failed queue are deleted afterwards."""
        name = f"jbtest.{label}.{uuid4().hex}"
        self.addCleanup(self._delete_queues, name)
        return name

    async def _delete_queues(self, name: str) -> None:
        for queue in (name, topology.failed(name)):
            await within(self.broker.delete_queue(queue))

    async def consume(
        self,
        queue: str,
        handler: Callable[[Message], Awaitable[None]],
        prefetch: int = 20,
        broker: Any = None,
        expires: float | None = None,
    ) -> Any:
        """Consume; the consumer is stopped before the queues are deleted."""
        consumer = await within(
            (broker or self.broker).consume(
                queue, handler, prefetch=prefetch, expires=expires
            )
        )
        self.addCleanup(consumer.stop)
        return consumer

    async def round_trip(self) -> None:
        """Publish and receive on a separate queue: the broker has had the
        time to deliver anything it was going to deliver."""
        probe = self.queue_name("probe")
        inbox = Inbox()
        await self.consume(probe, inbox.handler)
        await within(self.broker.publish(probe, message("probe")))
        await inbox.next()

    async def wait_for_loss(self, broker: Any) -> None:
        lost: Deferred[None] = Deferred()

        def listener(connected: bool) -> None:
            if not connected and not lost.called:
                lost.callback(None)

        remove = broker.add_connection_listener(listener)
        try:
            await within(lost)
        finally:
            remove()

    # -- the contract ---------------------------------------------------------------

    async def test_round_trip_keeps_json_exactly(self) -> None:
        queue = self.queue_name()
        inbox = Inbox()
        await self.consume(queue, inbox.handler)
        sent = message(
            'h\u00e9llo \u2603 "quoted" \\ \U0001f600\n',
            helper_metadata={
                "nested": {"list": [1, 2.5, -0.0, None, True, False, "x", []]},
                "empty": {},
                "big": 2**53 + 1,
            },
            transport_metadata={"unicode-\u00fc": "\u0000 control"},
        )
        expected = from_json(json.dumps(sent))
        await within(self.broker.publish(queue, sent))
        sent["content"] = "changed after publishing"
        sent["helper_metadata"]["nested"]["list"].append("changed")

        received = await inbox.next()
        self.assertEqual(received, expected)
        self.assertIsNot(received, sent)
        self.assertIsNot(received["helper_metadata"], sent["helper_metadata"])

    async def test_publish_later_arrives_after_the_delay(self) -> None:
        """A delayed message reaches its queue after its tier's delay, not before."""
        queue = self.queue_name()
        inbox = Inbox()
        await self.consume(queue, inbox.handler)
        started = reactor.seconds()
        await within(self.broker.publish_later(queue, message("later"), 0.5))
        await within(self.broker.publish(queue, message("now")))
        self.assertEqual((await inbox.next())["content"], "now")
        self.assertEqual((await inbox.next())["content"], "later")
        self.assertGreaterEqual(reactor.seconds() - started, 0.9)

    async def test_drain_hands_over_waiting_messages(self) -> None:
        """drain() takes waiting messages in order and acks each handled one."""
        queue = self.queue_name()
        await within(self.broker.declare_queue(queue))
        for i in range(3):
            await within(self.broker.publish(queue, message(str(i))))
        await self.round_trip()
        seen: list[str] = []

        async def take(msg: Message) -> None:
            if len(seen) == 2:
                raise HandlerError("stop here")
            seen.append(msg["content"])

        with self.assertRaises(HandlerError):
            await within(self.broker.drain(queue, take))
        self.assertEqual(seen, ["0", "1"])
        count = await within(self.broker.drain(queue, Inbox().handler))
        self.assertEqual(count, 1)
        self.assertEqual(await within(self.broker.drain(queue, take)), 0)

    async def test_delete_queue_removes_it_and_its_messages(self) -> None:
        """delete_queue() deletes the queue and what waits in it; deleting an
        absent queue succeeds."""
        queue = self.queue_name()
        await within(self.broker.declare_queue(queue))
        await within(self.broker.publish(queue, message("waiting")))
        self.assertTrue(await self.queue_exists(queue))
        await within(self.broker.delete_queue(queue))
        self.assertFalse(await self.queue_exists(queue))
        await within(self.broker.delete_queue(queue))  # absent: fine
        await within(self.broker.declare_queue(queue))
        self.assertEqual(await within(self.broker.drain(queue, Inbox().handler)), 0)

    async def test_declare_and_delete_queues_many_at_once(self) -> None:
        """declare_queues() declares and binds each queue; delete_queues()
        deletes each with its messages, absent ones too."""
        queues = [self.queue_name() for _ in range(3)]
        await within(self.broker.declare_queues(queues))
        for queue in queues:
            self.assertTrue(await self.queue_exists(queue))
        await within(self.broker.publish(queues[1], message("bound")))
        await within(self.broker.delete_queues([*queues, self.queue_name()]))
        for queue in queues:
            self.assertFalse(await self.queue_exists(queue))
        await within(self.broker.declare_queue(queues[1]))
        self.assertEqual(await within(self.broker.drain(queues[1], Inbox().handler)), 0)

    async def test_queue_with_expires_goes_once_unused(self) -> None:
        """A queue declared with ``expires`` is deleted once it has had no
        consumer that long; while consumed it stays."""
        queue = self.queue_name()
        inbox = Inbox()
        consumer = await self.consume(queue, inbox.handler, expires=0.3)
        await deferLater(reactor, 0.5, lambda: None)  # consumed: stays
        self.assertTrue(await self.queue_exists(queue))
        await within(self.broker.publish(queue, message("control")))
        self.assertEqual((await inbox.next())["content"], "control")
        await within(consumer.stop())
        await poll_until(lambda: self._absent(queue), timeout=10, interval=1)

    async def _absent(self, queue: str) -> bool:
        # Asking (a passive declare) counts as a use for RabbitMQ: the
        # polling interval is longer than ``expires``.
        return not await self.queue_exists(queue)

    async def test_declare_with_expires(self) -> None:
        queue = self.queue_name()
        await within(self.broker.declare_queue(queue, expires=2))
        self.assertTrue(await self.queue_exists(queue))
        await poll_until(lambda: self._absent(queue), timeout=15, interval=2.5)

    async def test_queue_depths_counts_waiting_messages(self) -> None:
        """queue_depths() says how many messages wait in each queue and leaves
        out a queue that does not exist (the queues after it still count)."""
        full, empty, absent = self.queue_name(), self.queue_name(), self.queue_name()
        await within(self.broker.declare_queue(full))
        await within(self.broker.declare_queue(empty))
        for n in range(3):
            await within(self.broker.publish(full, message(f"waiting {n}")))
        await self.round_trip()
        depths = await within(self.broker.queue_depths([absent, full, empty]))
        self.assertEqual(depths, {full: 3, empty: 0})

    async def test_message_with_ttl_expires_while_waiting(self) -> None:
        """A message published with a ttl is dropped once it has waited that
        long (ttl 0, with no consumer: at once); others stay."""
        queue = self.queue_name()
        await within(self.broker.declare_queue(queue))
        await within(self.broker.publish(queue, message("expires"), ttl=0))
        await within(self.broker.publish(queue, message("stays")))
        await within(self.broker.publish(queue, message("in time"), ttl=60))
        await self.round_trip()
        inbox = Inbox()
        self.assertEqual(await within(self.broker.drain(queue, inbox.handler)), 2)
        self.assertEqual([m["content"] for m in inbox.messages], ["stays", "in time"])

    async def test_peek_copies_waiting_messages_once_and_leaves_them(self) -> None:
        """peek() shows each waiting message once, oldest first, even when asked
        for more than are waiting; the queue keeps them all, in order."""
        queue = self.queue_name()
        await within(self.broker.declare_queue(queue))
        for i in range(3):
            await within(self.broker.publish(queue, message(str(i))))
        await self.round_trip()
        peeked = await within(self.broker.peek(queue, 10))
        self.assertEqual([m["content"] for m in peeked], ["0", "1", "2"])
        first = await within(self.broker.peek(queue, 2))
        self.assertEqual([m["content"] for m in first], ["0", "1"])
        inbox = Inbox()
        self.assertEqual(await within(self.broker.drain(queue, inbox.handler)), 3)
        self.assertEqual(await within(self.broker.peek(queue, 10)), [])

    async def test_unbound_routing_key_drops_the_message(self) -> None:
        queue = self.queue_name()
        await within(self.broker.publish(queue, message("dropped")))
        inbox = Inbox()
        await self.consume(queue, inbox.handler)
        await within(self.broker.publish(queue, message("kept")))
        self.assertEqual((await inbox.next())["content"], "kept")

    async def test_declared_queue_keeps_messages_until_consumed(self) -> None:
        queue = self.queue_name()
        await within(self.broker.declare_queue(queue))
        for i in range(3):
            await within(self.broker.publish(queue, message(str(i))))
        inbox = Inbox()
        await self.consume(queue, inbox.handler)
        received = [(await inbox.next())["content"] for _ in range(3)]
        self.assertEqual(received, ["0", "1", "2"])

    async def test_prefetch_limits_concurrent_handlers(self) -> None:
        queue = self.queue_name()
        active = 0
        most_active = 0
        # Holds (message, gate) pairs; a bare Deferred would be chained.
        started: DeferredQueue[tuple[Message, Deferred[None]]] = DeferredQueue()

        async def handler(msg: Message) -> None:
            nonlocal active, most_active
            active += 1
            most_active = max(most_active, active)
            gate: Deferred[None] = Deferred()
            started.put((msg, gate))
            try:
                await gate
            finally:
                active -= 1

        await within(self.broker.declare_queue(queue))
        for i in range(5):
            await within(self.broker.publish(queue, message(str(i))))
        await self.consume(queue, handler, prefetch=2)
        self.addCleanup(lambda: [gate.callback(None) for _, gate in running])

        running: list[tuple[Message, Deferred[None]]] = []
        running = [await within(started.get()) for _ in range(2)]
        await self.round_trip()
        self.assertEqual((active, len(started.pending)), (2, 0))
        order = []
        while running:
            msg, gate = running.pop(0)
            order.append(msg["content"])
            gate.callback(None)
            if len(order) + len(running) < 5:
                running.append(await within(started.get()))
        self.assertEqual(sorted(order), ["0", "1", "2", "3", "4"])
        self.assertEqual(most_active, 2)

    async def test_failing_handler_gets_one_retry_then_failed_queue(self) -> None:
        queue = self.queue_name()
        attempts: list[Message] = []
        second_attempt: Deferred[None] = Deferred()

        async def handler(msg: Message) -> None:
            attempts.append(msg)
            if len(attempts) == 2:
                second_attempt.callback(None)
            raise HandlerError(msg["content"])

        await self.consume(queue, handler)
        sent = message("poison")
        await within(self.broker.publish(queue, sent))
        await within(second_attempt)

        failed = Inbox()
        await self.consume(topology.failed(queue), failed.handler)
        self.assertEqual(await failed.next(), sent)
        self.assertEqual(attempts, [sent, sent])
        self.assertEqual(len(self.flushLoggedErrors(HandlerError)), 2)
        await self.assert_durable(topology.failed(queue))

    async def test_temporary_failures_requeue_without_a_strike(self) -> None:
        """TemporaryFailure, and a store or broker that is away, put the
        message back as often as needed, never in the failed queue (a Redis
        restart slower than two deliveries used to lose events there)."""
        # The pause before each requeue is checked on a Clock in
        # test_amqp_policy.py; here three of a second each would be waited.
        self.patch(policy, "RETRY_LATER_PAUSE", 0.05)
        queue = self.queue_name()
        attempts: list[str] = []
        done: Deferred[None] = Deferred()
        away = [
            TemporaryFailure("peer down"),
            StoreUnavailable("Redis GET: LOADING Redis is loading the dataset"),
            BrokerError("not connected to RabbitMQ"),
        ]

        async def handler(msg: Message) -> None:
            attempts.append(msg["content"])
            if len(attempts) <= len(away):
                raise away[len(attempts) - 1]
            done.callback(None)

        await self.consume(queue, handler)
        await within(self.broker.publish(queue, message("again")))
        await within(done, 30)
        self.assertEqual(attempts, ["again"] * 4)
        await self.round_trip()
        failed = Inbox()
        await self.consume(topology.failed(queue), failed.handler)
        await self.round_trip()
        self.assertEqual(failed.messages, [])

    async def test_a_stopping_consumer_requeues_later_without_the_pause(
        self,
    ) -> None:
        """A handler that fails for now while its consumer stops (a channel
        handing its transport over) puts the message back at once: the
        stop does not wait out the pause, and the next consumer gets it."""
        self.patch(policy, "RETRY_LATER_PAUSE", 60.0)
        queue = self.queue_name()
        started: Deferred[None] = Deferred()
        release: Deferred[None] = Deferred()

        async def handler(msg: Message) -> None:
            started.callback(None)
            await release
            raise TemporaryFailure("the transport is stopping")

        consumer = await self.consume(queue, handler)
        sent = message("in flight")
        await within(self.broker.publish(queue, sent))
        await within(started)
        stopping = ensureDeferred(consumer.stop())
        release.callback(None)
        await within(stopping, 5)
        inbox = Inbox()
        await self.consume(queue, inbox.handler)
        self.assertEqual(await inbox.next(), sent)

    async def test_handler_failing_once_succeeds_on_redelivery(self) -> None:
        queue = self.queue_name()
        inbox = Inbox()
        failures = 0

        async def handler(msg: Message) -> None:
            nonlocal failures
            if failures == 0:
                failures += 1
                raise HandlerError("first time")
            await inbox.handler(msg)

        await self.consume(queue, handler)
        await within(self.broker.publish(queue, message("flaky")))
        self.assertEqual((await inbox.next())["content"], "flaky")
        self.assertEqual(len(self.flushLoggedErrors(HandlerError)), 1)

        # Nothing reached the failed queue: the first thing there is ours.
        failed_queue = topology.failed(queue)
        failed = Inbox()
        await self.consume(failed_queue, failed.handler)
        await within(self.broker.publish(failed_queue, message("marker")))
        self.assertEqual((await failed.next())["content"], "marker")

    async def test_stop_waits_for_running_handlers(self) -> None:
        queue = self.queue_name()
        started: Deferred[None] = Deferred()
        gate: Deferred[None] = Deferred()
        finished: list[Message] = []

        async def handler(msg: Message) -> None:
            started.callback(None)
            await gate
            finished.append(msg)

        consumer = await self.consume(queue, handler)
        self.addCleanup(lambda: gate.called or gate.callback(None))
        await within(self.broker.publish(queue, message("slow")))
        await within(started)

        stopping = ensureDeferred(consumer.stop())
        await self.round_trip()
        self.assertFalse(stopping.called)
        gate.callback(None)
        await within(stopping)
        self.assertEqual(len(finished), 1)

        # It was acknowledged: a new consumer does not see it again.
        inbox = Inbox()
        await self.consume(queue, inbox.handler)
        await within(self.broker.publish(queue, message("after")))
        self.assertEqual((await inbox.next())["content"], "after")

    async def test_publish_while_disconnected_raises(self) -> None:
        broker = await self.create_disconnected_broker()
        self.addCleanup(broker.close)
        self.assertFalse(broker.is_connected())
        with self.assertRaises(BrokerError):
            await within(broker.publish("nowhere", message("lost")))

    async def test_operations_after_close_raise(self) -> None:
        broker = await self.new_broker()
        await within(broker.close())
        self.assertFalse(broker.is_connected())
        with self.assertRaises(BrokerError):
            await within(broker.publish("nowhere", message("late")))
        with self.assertRaises(BrokerError):
            await within(broker.declare_queue("nowhere"))
        with self.assertRaises(BrokerError):
            await within(broker.consume("nowhere", Inbox().handler))
        await within(broker.close())  # closing twice is fine

    async def test_consumer_survives_a_lost_connection(self) -> None:
        queue = self.queue_name()
        inbox = Inbox()
        await self.consume(queue, inbox.handler)
        await within(self.broker.publish(queue, message("before")))
        self.assertEqual((await inbox.next())["content"], "before")

        changes: list[bool] = []
        self.addCleanup(self.broker.add_connection_listener(changes.append))
        await self.lose_connection(self.broker)
        self.assertFalse(self.broker.is_connected())
        with self.assertRaises(BrokerError):
            await within(self.broker.publish(queue, message("while down")))

        self.restore_connection(self.broker)
        await within(self.broker.when_connected(TIMEOUT))
        self.assertTrue(self.broker.is_connected())
        await within(self.broker.publish(queue, message("after")))
        # The ack of "before" may not have left before the connection was
        # dropped (its write still buffered): then RabbitMQ delivers "before"
        # again, as at-least-once allows.  Nothing else may come first.
        content = (await inbox.next())["content"]
        while content == "before":
            content = (await inbox.next())["content"]
        self.assertEqual(content, "after")
        self.assertEqual(changes, [False, True])

    async def test_a_handler_learns_that_its_delivery_died(self) -> None:
        """When the connection drops under a running handler, its lease is
        lost: check_delivery() raises, so the handler does not repeat work
        for a message the broker delivers again."""
        queue = self.queue_name()
        started: Deferred[None] = Deferred()
        gate: Deferred[None] = Deferred()
        seen: list[str] = []

        async def handler(msg: Message) -> None:
            lease = current_lease()
            assert lease is not None
            check_delivery()  # alive
            if not seen and not gate.called:
                # Woken after this handler is parked on the gate.
                reactor.callLater(0, started.callback, None)
                await gate
                try:
                    check_delivery()
                except DeliveryLost:
                    seen.append("lost")
                    raise
                return
            seen.append("done")

        await self.consume(queue, handler)
        await within(self.broker.publish(queue, message("interrupted")))
        await within(started)
        await self.lose_connection(self.broker)
        gate.callback(None)
        self.assertEqual(seen, ["lost"])
        self.restore_connection(self.broker)
        await within(self.broker.when_connected(TIMEOUT))
        # Delivered again, on the new connection, to a handler that finishes.
        await within(self._until(lambda: "done" in seen))
        self.assertIsNone(current_lease())

    async def _until(self, condition: Callable[[], bool]) -> None:
        while not condition():
            await deferLater(reactor, 0.01, lambda: None)


class MemoryBrokerTests(BrokerContract):
    __test__ = True
    skip = None

    async def create_broker(self) -> MemoryBroker:
        return MemoryBroker(reactor)

    async def create_disconnected_broker(self) -> MemoryBroker:
        broker = MemoryBroker(reactor)
        broker.disconnect()
        return broker

    async def lose_connection(self, broker: Any) -> None:
        broker.disconnect()

    def restore_connection(self, broker: Any) -> None:
        broker.reconnect()

    async def assert_durable(self, queue: str) -> None:
        self.assertTrue(self.broker.has_queue(queue))

    async def queue_exists(self, queue: str) -> bool:
        exists: bool = self.broker.has_queue(queue)
        return exists

    async def test_inspection_and_flush(self) -> None:
        queue = self.queue_name()
        await self.broker.declare_queue(queue)
        sent = message("waiting")
        await self.broker.publish(queue, sent)
        self.assertEqual(self.broker.queue_messages(queue), [sent])
        self.assertIsNot(self.broker.queue_messages(queue)[0], sent)
        self.assertEqual(self.broker.pending(queue), 1)

        inbox = Inbox()
        await self.consume(queue, inbox.handler)
        self.assertEqual(inbox.messages, [])  # delivery is never synchronous
        await within(self.broker.flush())
        self.assertEqual(inbox.messages, [sent])
        self.assertEqual(self.broker.pending(queue), 0)
        self.assertEqual(self.broker.queue_messages(queue), [])

    async def test_unacked_messages_return_on_disconnect(self) -> None:
        queue = self.queue_name()
        started: Deferred[None] = Deferred()
        gate: Deferred[None] = Deferred()
        seen: list[Message] = []

        async def handler(msg: Message) -> None:
            seen.append(msg)
            if len(seen) == 1:
                started.callback(None)
                await gate

        await self.consume(queue, handler)
        await self.broker.publish(queue, message("interrupted"))
        await within(started)
        self.broker.disconnect()
        self.assertEqual(self.broker.pending(queue), 1)
        gate.callback(None)  # its ack is lost with the connection
        self.broker.reconnect()
        await within(self.broker.flush())
        self.assertEqual([m["content"] for m in seen], ["interrupted"] * 2)
        self.assertEqual(self.broker.pending(queue), 0)


class RabbitMQBrokerTests(BrokerContract):
    __test__ = True
    skip = None

    def settings(self, **overrides: Any) -> Any:
        return rabbitmq_test_settings(
            retry_initial_delay=0.05,
            retry_max_delay=0.5,
            retry_jitter=0.05,
            connect_timeout=5.0,
            operation_timeout=5.0,
            **overrides,
        )

    #: Why the first connection failed: later tests fail at once with it.
    unreachable: BrokerError | None = None

    async def create_broker(self) -> RabbitMQBroker:
        if RabbitMQBrokerTests.unreachable is not None:
            raise RabbitMQBrokerTests.unreachable
        broker = RabbitMQBroker(reactor, self.settings())
        try:
            await broker.when_connected(timeout=TIMEOUT)
        except BrokerError as e:
            RabbitMQBrokerTests.unreachable = e
            await broker.close()
            raise
        return broker

    async def create_disconnected_broker(self) -> RabbitMQBroker:
        broker = RabbitMQBroker(reactor, self.settings(port=_unused_port()))
        broker.start()
        return broker

    async def lose_connection(self, broker: Any) -> None:
        lost = ensureDeferred(self.wait_for_loss(broker))
        broker.drop_connection()
        await lost

    async def assert_durable(self, queue: str) -> None:
        self.assertTrue(await within(queue_is_durable(reactor, self.settings(), queue)))

    async def queue_exists(self, queue: str) -> bool:
        return await within(queue_exists(reactor, self.settings(), queue))

    async def test_delete_queues_tries_again_after_a_refusal(self) -> None:
        """A queue.delete refused half-way (RabbitMQ's 404 "home node ... is
        down or inaccessible" closes the channel) is tried again on a new
        channel, from the queue it failed on."""
        queues = [self.queue_name() for _ in range(3)]
        await within(self.broker.declare_queues(queues))
        broker: Any = self.broker
        real = broker._with_channel
        calls: list[str] = []

        class RefusesTheSecondDelete:
            def __init__(self, channel: Any) -> None:
                self._channel = channel
                self.deletes = 0

            def queue_delete(self, queue: str) -> Deferred[Any]:
                self.deletes += 1
                if self.deletes == 2:
                    return fail(BrokerError("404 NOT_FOUND - home node is down"))
                result: Deferred[Any] = self._channel.queue_delete(queue=queue)
                return result

        async def with_channel(what: str, use: Any) -> None:
            calls.append(what)
            if len(calls) == 1:
                await real(what, lambda ch: use(RefusesTheSecondDelete(ch)))
            else:
                await real(what, use)

        broker._with_channel = with_channel
        await within(self.broker.delete_queues(queues))
        self.assertEqual(calls, ["delete 3 queues", "delete 2 queues"])
        for queue in queues:
            self.assertFalse(await self.queue_exists(queue))

    async def test_messages_and_queues_are_persistent(self) -> None:
        queue = self.queue_name()
        await within(self.broker.declare_queue(queue))
        sent = message("persistent")
        await within(self.broker.publish(queue, sent))
        raw = await within(peek_message(reactor, self.settings(), queue))
        assert raw is not None
        self.assertEqual(raw.delivery_mode, 2)
        self.assertEqual(raw.content_type, "application/json")
        self.assertEqual(from_json(raw.body), sent)
        await self.assert_durable(queue)

    async def test_pending_confirm_fails_when_the_connection_dies(self) -> None:
        queue = self.queue_name()
        await within(self.broker.declare_queue(queue))
        publishing = ensureDeferred(self.broker.publish(queue, message("unsure")))
        self.broker.drop_connection()
        with self.assertRaises(BrokerError):
            await within(publishing)
        await within(self.broker.when_connected(TIMEOUT))

    async def test_consumer_survives_the_server_closing_the_connection(self) -> None:
        settings = self.settings()
        if shutil.which("rabbitmqctl") is None or settings.vhost == "/":
            self.skipTest("needs rabbitmqctl and a test vhost of our own")
        queue = self.queue_name()
        inbox = Inbox()
        await self.consume(queue, inbox.handler)
        lost = ensureDeferred(self.wait_for_loss(self.broker))
        _out, err, code = await within(
            getProcessOutputAndValue(
                "rabbitmqctl",
                ["close_all_connections", "--vhost", settings.vhost, "contract test"],
                env=os.environ,
            ),
            60,
        )
        self.assertEqual(code, 0, err)
        await lost
        await within(self.broker.when_connected(TIMEOUT))
        await within(self.broker.publish(queue, message("after")))
        self.assertEqual((await inbox.next())["content"], "after")

    async def test_consumer_comes_back_when_its_queue_is_deleted(self) -> None:
        queue = self.queue_name()
        inbox = Inbox()
        await self.consume(queue, inbox.handler)
        await within(self.broker.delete_queue(queue))
        # RabbitMQ cancels the consumer; it declares the queue again.  Poll
        # by publishing until a message gets through (bounded by within()).

        async def until_received() -> Message:
            while True:
                await self.broker.publish(queue, message("again"))
                try:
                    return await inbox.next(timeout=0.05)
                except DeferredTimeoutError:
                    continue

        self.assertEqual((await within(until_received()))["content"], "again")

    async def test_more_consumers_than_channel_max(self) -> None:
        """Past the connection's channel numbers consumers share channels:
        each still gets its own messages, with its own prefetch, and
        stopping some leaves the others consuming."""
        broker = RabbitMQBroker(reactor, self.settings(channel_max=8))
        self.addCleanup(broker.close)
        await within(broker.when_connected(timeout=TIMEOUT))
        count = 30  # 8 channel numbers, 6 of them for consumers
        queues = [self.queue_name(f"cap{i}") for i in range(count)]
        inboxes = [Inbox() for _ in queues]
        consumers = [
            await self.consume(queue, inbox.handler, broker=broker)
            for queue, inbox in zip(queues, inboxes, strict=True)
        ]
        live = broker._live
        assert live is not None
        self.assertLessEqual(live.protocol.amqp.open_channels, 8)
        for i, queue in enumerate(queues):
            await within(broker.publish(queue, message(f"to {i}")))
        for i, inbox in enumerate(inboxes):
            self.assertEqual((await inbox.next())["content"], f"to {i}")
            self.assertEqual(len(inbox.messages), 1)
        # A consumer on a shared channel keeps its prefetch: 2 at once.
        slow_queue = self.queue_name("slow")
        gate: Deferred[None] = Deferred()
        held: list[Message] = []
        everything_held: Deferred[None] = Deferred()

        async def slow(msg: Message) -> None:
            held.append(msg)
            if len(held) == 2:
                everything_held.callback(None)
            await gate

        await self.consume(slow_queue, slow, prefetch=2, broker=broker)
        for n in range(4):
            await within(broker.publish(slow_queue, message(f"slow {n}")))
        await within(everything_held)
        # The others still flow meanwhile; then exactly 2 are held.
        await within(broker.publish(queues[0], message("meanwhile")))
        self.assertEqual((await inboxes[0].next())["content"], "meanwhile")
        self.assertEqual(len(held), 2)
        gate.callback(None)
        # Stopping half the consumers leaves the other half consuming.
        for consumer in consumers[::2]:
            await within(consumer.stop())
        for i, queue in enumerate(queues):
            await within(broker.publish(queue, message(f"again {i}")))
        for i in range(1, count, 2):
            self.assertEqual((await inboxes[i].next())["content"], f"again {i}")
        left = Inbox()
        for i in range(0, count, 2):
            self.assertEqual(await within(broker.drain(queues[i], left.handler)), 1)
        self.assertLessEqual(live.protocol.amqp.open_channels, 8)

    async def test_more_consumers_than_channel_max_after_a_reconnect(self) -> None:
        """After a reconnect every consumer attaches again at once: those
        past the channel numbers wait for a channel to share, none fails."""
        broker = RabbitMQBroker(reactor, self.settings(channel_max=8))
        self.addCleanup(broker.close)
        await within(broker.when_connected(timeout=TIMEOUT))
        queues = [self.queue_name(f"re{i}") for i in range(20)]
        inboxes = [Inbox() for _ in queues]
        for queue, inbox in zip(queues, inboxes, strict=True):
            await self.consume(queue, inbox.handler, broker=broker)
        failures: list[str] = []

        def observe(event: dict[str, Any]) -> None:
            if "Could not consume" in str(event.get("log_format", "")):
                failures.append(str(event.get("error")))

        globalLogPublisher.addObserver(observe)
        self.addCleanup(globalLogPublisher.removeObserver, observe)
        await self.lose_connection(broker)
        await within(broker.when_connected(TIMEOUT))
        for i, queue in enumerate(queues):
            await within(broker.publish(queue, message(f"after {i}")))
        for i, inbox in enumerate(inboxes):
            self.assertEqual((await inbox.next())["content"], f"after {i}")
        self.assertEqual(failures, [])

    async def test_a_cancelled_consumer_on_a_shared_channel(self) -> None:
        """RabbitMQ cancelling one consumer of a shared channel (its queue
        was deleted) leaves the channel to the others; it comes back."""
        broker = RabbitMQBroker(reactor, self.settings(channel_max=8))
        self.addCleanup(broker.close)
        await within(broker.when_connected(timeout=TIMEOUT))
        queues = [self.queue_name(f"share{i}") for i in range(10)]
        inboxes = [Inbox() for _ in queues]
        consumers = [
            await self.consume(queue, inbox.handler, broker=broker)
            for queue, inbox in zip(queues, inboxes, strict=True)
        ]
        shared = consumers[-1]._attachment.shared
        self.assertGreater(shared.users, 1)
        await within(broker.delete_queue(queues[-1]))

        async def until_received() -> Message:
            while True:
                await broker.publish(queues[-1], message("back"))
                try:
                    return await inboxes[-1].next(timeout=0.05)
                except DeferredTimeoutError:
                    continue

        self.assertEqual((await within(until_received()))["content"], "back")
        for i, queue in enumerate(queues[:-1]):
            await within(broker.publish(queue, message(f"still {i}")))
            self.assertEqual((await inboxes[i].next())["content"], f"still {i}")

    async def test_peeks_past_channel_max_wait_for_a_channel_number(self) -> None:
        """Peeks (as declarations and drains) run on short-lived channels
        kept within the reserved numbers: many at once, with every consumer
        channel number taken, all succeed."""
        broker = RabbitMQBroker(reactor, self.settings(channel_max=8))
        self.addCleanup(broker.close)
        await within(broker.when_connected(timeout=TIMEOUT))
        for i in range(10):
            await self.consume(
                self.queue_name(f"full{i}"), Inbox().handler, broker=broker
            )
        queue = self.queue_name("peeked")
        await within(broker.declare_queue(queue))
        await within(broker.publish(queue, message("waiting")))
        peeks = [ensureDeferred(broker.peek(queue)) for _ in range(10)]
        for peek in peeks:
            self.assertEqual([m["content"] for m in await within(peek)], ["waiting"])

    async def test_consumers_on_a_shared_channel_lose_their_leases_with_it(
        self,
    ) -> None:
        """When RabbitMQ closes a shared channel (here: an ack of an unknown
        delivery tag), every consumer on it learns that its running delivery
        died; the messages come again once they have re-attached."""
        broker = RabbitMQBroker(reactor, self.settings(channel_max=8))
        self.addCleanup(broker.close)
        await within(broker.when_connected(timeout=TIMEOUT))
        gate: Deferred[None] = Deferred()
        seen: dict[str, list[str]] = {}
        parked: list[str] = []

        def handler_for(queue: str) -> Callable[[Message], Awaitable[None]]:
            async def handler(msg: Message) -> None:
                outcome = seen.setdefault(queue, [])
                if not outcome and not gate.called:
                    parked.append(queue)
                    await gate
                    try:
                        check_delivery()
                    except DeliveryLost:
                        outcome.append("lost")
                        raise
                    outcome.append("not lost")
                    return
                outcome.append("done")

            return handler

        queues = [self.queue_name(f"lease{i}") for i in range(10)]
        consumers = [
            await self.consume(queue, handler_for(queue), broker=broker)
            for queue in queues
        ]
        attachment = consumers[-1]._attachment
        assert attachment is not None
        shared = attachment.shared
        on_it = [
            queue
            for queue, consumer in zip(queues, consumers, strict=True)
            if consumer._attachment is not None
            and consumer._attachment.shared is shared
        ]
        self.assertGreater(len(on_it), 1)
        for queue in on_it:
            await within(broker.publish(queue, message(f"to {queue}")))
        await within(self._until(lambda: len(parked) == len(on_it)))
        shared.channel.basic_ack(10**6)  # RabbitMQ closes the channel for it
        await within(self._until(lambda: not shared.channel.is_open))
        gate.callback(None)
        self.assertEqual({q: seen[q] for q in on_it}, {q: ["lost"] for q in on_it})
        # Delivered again once each consumer is back on a channel.
        await within(
            self._until(lambda: all(seen[q] == ["lost", "done"] for q in on_it))
        )

    async def test_when_connected_times_out_for_an_unreachable_broker(self) -> None:
        broker = RabbitMQBroker(reactor, self.settings(port=_unused_port()))
        self.addCleanup(broker.close)
        with self.assertRaises(BrokerError) as caught:
            await within(broker.when_connected(timeout=0.3))
        self.assertIn("could not connect", str(caught.exception))


def _unused_port() -> int:
    """A local TCP port nothing listens on (connecting is refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port
