"""The consumer policy both brokers follow, and the lease handlers run under."""

from __future__ import annotations

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from junebug.amqp.lease import (
    DeliveryLease,
    check_delivery,
    current_lease,
    run_leased,
)
from junebug.amqp.memory import MemoryBroker
from junebug.amqp.policy import RETRY_LATER_PAUSE, Settlement, settlement
from junebug.errors import (
    BrokerError,
    DeliveryLost,
    StoreUnavailable,
    TemporaryFailure,
)
from junebug.messages import Message, user_message


class SettlementTests(SynchronousTestCase):
    def test_the_table(self) -> None:
        boom = RuntimeError("boom")
        for error, redelivered, readable, expected in (
            (None, False, True, Settlement.ACK),
            (None, True, True, Settlement.ACK),
            (boom, False, True, Settlement.REQUEUE),
            (boom, True, True, Settlement.DEAD_LETTER),
            (None, False, False, Settlement.DEAD_LETTER),
            (TemporaryFailure("peer down"), True, True, Settlement.REQUEUE_LATER),
            (StoreUnavailable("redis"), True, True, Settlement.REQUEUE_LATER),
            (BrokerError("rabbit"), False, True, Settlement.REQUEUE_LATER),
            (DeliveryLost("gone"), True, True, Settlement.REQUEUE_LATER),
        ):
            self.assertEqual(
                settlement(error, redelivered=redelivered, readable=readable),
                expected,
                (error, redelivered, readable),
            )


class LeaseTests(SynchronousTestCase):
    def test_no_lease_outside_a_consumer(self) -> None:
        self.assertIsNone(current_lease())
        check_delivery()  # nothing to lose

    def test_the_lease_reaches_nested_work_and_stays_there(self) -> None:
        lease = DeliveryLease()
        gate: Deferred[None] = Deferred()
        seen: list[DeliveryLease | None] = []

        async def part() -> None:
            await gate
            seen.append(current_lease())
            check_delivery()

        async def handler(_: int) -> None:
            await ensureDeferred(part())

        d = run_leased(lease, handler, 1)
        self.assertIsNone(current_lease())  # the caller's context is untouched
        lease.lose()
        gate.callback(None)
        self.assertEqual(seen, [lease])
        self.failureResultOf(d, DeliveryLost)


def _message() -> Message:
    return user_message(to_addr="1", from_addr="2", transport_name="t", content="x")


class MemoryBrokerClockTests(SynchronousTestCase):
    def test_requeue_later_waits_on_the_injected_clock(self) -> None:
        clock = Clock()
        broker = MemoryBroker(clock)
        calls: list[Message] = []

        async def handler(message: Message) -> None:
            calls.append(message)
            if len(calls) == 1:
                raise TemporaryFailure("the SMSC is away")

        self.successResultOf(ensureDeferred(broker.consume("q", handler)))
        self.successResultOf(ensureDeferred(broker.publish("q", _message())))
        clock.advance(0)
        self.assertEqual(len(calls), 1)
        clock.advance(RETRY_LATER_PAUSE - 0.01)
        self.assertEqual(len(calls), 1)
        clock.advance(0.01)
        clock.advance(0)
        self.assertEqual(len(calls), 2)
        self.assertEqual(broker.pending("q"), 0)
        self.assertEqual(broker.queue_messages("q.failed"), [])
