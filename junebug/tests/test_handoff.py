"""The short way for a channel's events and MO (junebug.channels.handoff)."""

from __future__ import annotations

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.logger import Logger
from twisted.trial.unittest import TestCase

from junebug.channels.handoff import HandOff
from junebug.messages import Message, ack


class Handler:
    """A forwarder's handle_event that finishes when the test says."""

    def __init__(self) -> None:
        self.calls: list[Message] = []
        self.waiting: list[Deferred[None]] = []
        self.hold = False
        self.error: Exception | None = None

    async def __call__(self, event: Message) -> None:
        self.calls.append(event)
        if self.hold:
            waiting: Deferred[None] = Deferred()
            self.waiting.append(waiting)
            await waiting
        if self.error is not None:
            raise self.error


class HandOffTests(TestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.handler = Handler()
        self.handoff = HandOff(
            self.handler, self.clock, Logger(), timeout=0.25, most_in_flight=2
        )

    def event(self, n: int = 1) -> Message:
        return ack(f"m{n}", f"s{n}", "c")

    async def test_a_quick_hand_off_takes_the_event(self) -> None:
        self.assertIs(await self.handoff.hand_on(self.event()), True)
        self.assertEqual([e["user_message_id"] for e in self.handler.calls], ["m1"])
        self.assertEqual((self.handoff.handed, self.handoff.declined), (1, 0))
        self.assertEqual(self.handoff.in_flight, 0)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    async def test_a_failed_hand_off_leaves_the_event_to_the_queue(self) -> None:
        self.handler.error = RuntimeError("Redis away")
        self.assertIs(await self.handoff.hand_on(self.event()), False)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertEqual((self.handoff.handed, self.handoff.declined), (0, 1))
        # The next one is tried again: a failure is not a slow receiver.
        self.handler.error = None
        self.assertIs(await self.handoff.hand_on(self.event(2)), True)

    async def test_a_slow_hand_off_is_published_and_turns_the_short_way_off(
        self,
    ) -> None:
        self.handler.hold = True
        waiting = Deferred.fromCoroutine(self.handoff.hand_on(self.event()))
        self.assertNoResult(waiting)
        self.clock.advance(0.25)
        self.assertIs(self.successResultOf(waiting), False)
        # Still under way: it counts until it finishes.
        self.assertEqual(self.handoff.in_flight, 1)
        self.handler.waiting.pop().callback(None)
        self.assertEqual(self.handoff.in_flight, 0)
        # Off for the cool-down, without calling the forwarder...
        self.clock.advance(29)
        self.assertIs(await self.handoff.hand_on(self.event(2)), False)
        self.assertEqual(len(self.handler.calls), 1)
        # ...then on again.
        self.handler.hold = False
        self.clock.advance(1)
        self.assertIs(await self.handoff.hand_on(self.event(3)), True)
        self.assertEqual(len(self.handler.calls), 2)

    async def test_slow_hand_offs_on_average_turn_the_short_way_off(self) -> None:
        """Each under the timeout, but 100 ms each: the moving mean passes a
        fifth of the timeout after seven of them."""
        self.handler.hold = True
        taken = []
        for n in range(7):
            waiting = Deferred.fromCoroutine(self.handoff.hand_on(self.event(n)))
            self.clock.advance(0.1)
            self.handler.waiting.pop().callback(None)
            taken.append(self.successResultOf(waiting))
        self.assertEqual(taken, [True] * 7)
        self.assertIs(await self.handoff.hand_on(self.event(8)), False)
        self.assertEqual(len(self.handler.calls), 7)
        self.clock.advance(30)
        self.handler.hold = False
        self.assertIs(await self.handoff.hand_on(self.event(9)), True)

    async def test_past_the_most_in_flight_events_are_published(self) -> None:
        self.handler.hold = True
        first = Deferred.fromCoroutine(self.handoff.hand_on(self.event(1)))
        second = Deferred.fromCoroutine(self.handoff.hand_on(self.event(2)))
        self.assertIs(await self.handoff.hand_on(self.event(3)), False)
        self.assertEqual(len(self.handler.calls), 2)
        for waiting in self.handler.waiting:
            waiting.callback(None)
        self.assertIs(self.successResultOf(first), True)
        self.assertIs(self.successResultOf(second), True)
        self.assertEqual((self.handoff.handed, self.handoff.declined), (2, 1))
        self.assertEqual(self.clock.getDelayedCalls(), [])

    async def test_a_timeout_of_zero_always_publishes(self) -> None:
        self.handoff.timeout = 0
        self.assertIs(await self.handoff.hand_on(self.event()), False)
        self.assertEqual(self.handler.calls, [])

    async def test_a_late_failure_is_logged(self) -> None:
        """A hand-off that fails after its timeout was already published."""
        self.handler.hold = True
        self.handler.error = RuntimeError("late")
        waiting = Deferred.fromCoroutine(self.handoff.hand_on(self.event()))
        self.clock.advance(0.25)
        self.assertIs(self.successResultOf(waiting), False)
        self.handler.waiting.pop().callback(None)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertEqual(self.handoff.in_flight, 0)
