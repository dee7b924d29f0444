"""StartRetries: capped exponential back-off, discard, give up on other errors."""

from __future__ import annotations

from twisted.internet import task
from twisted.logger import Logger
from twisted.trial.unittest import TestCase

from junebug.errors import BrokerError, StoreUnavailable
from junebug.start_retries import StartRetries


class StartRetriesTests(TestCase):
    def setUp(self) -> None:
        self.clock = task.Clock()
        self.retries = StartRetries(self.clock, Logger(), 1.0, 4.0)
        self.calls: list[float] = []
        self.away = True

    async def start(self) -> None:
        self.calls.append(self.clock.seconds())
        if self.away:
            raise BrokerError("not connected")

    def test_backs_off_until_it_succeeds(self) -> None:
        self.retries.add("c1", self.start)
        self.clock.pump([1, 2, 4, 4])
        self.assertEqual(self.calls, [1, 3, 7, 11])  # 1, 2, 4, then capped at 4
        self.away = False
        self.clock.advance(4)
        self.assertEqual(self.calls[-1], 15)
        self.assertEqual(self.retries.pending(), [])
        self.clock.advance(100)
        self.assertEqual(len(self.calls), 5)

    def test_success_resets_the_back_off(self) -> None:
        self.retries.add("c1", self.start)
        self.clock.pump([1, 2])
        self.away = False
        self.clock.advance(4)
        self.away = True
        self.retries.add("c2", self.start)
        self.clock.advance(1)
        self.assertEqual(self.calls, [1, 3, 7, 8])

    def test_discarded_and_stopped_are_not_retried(self) -> None:
        self.retries.add("c1", self.start)
        self.retries.discard("c1")
        self.clock.advance(1)
        self.assertEqual(self.calls, [])
        self.retries.add("c2", self.start)
        self.retries.stop()
        self.clock.advance(10)
        self.assertEqual((self.calls, self.retries.pending()), ([], []))

    def test_store_away_is_retried_other_errors_are_not(self) -> None:
        async def redis_away() -> None:
            self.calls.append(self.clock.seconds())
            raise StoreUnavailable("Redis GET: refused")

        async def broken() -> None:
            raise ValueError("a bug")

        self.retries.add("r", redis_away)
        self.retries.add("b", broken)
        self.clock.advance(1)
        self.assertEqual(self.retries.pending(), ["r"])
        self.assertEqual(len(self.flushLoggedErrors(ValueError)), 1)
