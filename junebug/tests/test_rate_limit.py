"""A channel's rate limit (:mod:`junebug.channels.rate_limit`) on a Clock."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from junebug.channels.rate_limit import MAX_BATCH, RateLimit, SendBudget
from junebug.errors import StoreUnavailable, TransportStopped
from junebug.stores.backend import BudgetGrant
from junebug.stores.memory import MemoryBackend


class CountingBackend(MemoryBackend):
    """Counts round trips; ``fail`` makes them fail as a Redis away; with
    ``slow`` each waits until the test fires it from ``replies``."""

    def __init__(self, clock: Clock) -> None:
        super().__init__(clock)
        self.calls: list[list[int]] = []
        self.fail = False
        self.slow = False
        self.replies: list[Deferred[None]] = []

    def reply(self) -> None:
        self.replies.pop(0).callback(None)

    async def take_budget(
        self, key: str, costs: Sequence[int], limit: int, window: float
    ) -> BudgetGrant:
        self.calls.append(list(costs))
        if self.slow:
            waiting: Deferred[None] = Deferred()
            self.replies.append(waiting)
            await waiting
        if self.fail:
            raise StoreUnavailable("Redis away")
        return await super().take_budget(key, costs, limit, window)


class Observations:
    def __init__(self) -> None:
        self.values: list[float] = []

    def observe(self, amount: float) -> None:
        self.values.append(amount)


class RateLimitOfTests(SynchronousTestCase):
    def test_no_limit(self) -> None:
        for props in ({}, {"rate_limit_count": 0}, {"rate_limit_window": 5}):
            self.assertIsNone(RateLimit.of(props))

    def test_count_and_window(self) -> None:
        limit = RateLimit.of({"rate_limit_count": 5, "rate_limit_window": 2})
        self.assertEqual(limit, RateLimit(5, 2))
        assert limit is not None
        self.assertEqual(limit.view(), {"count": 5, "window": 2})

    def test_window_defaults_to_a_second(self) -> None:
        self.assertEqual(RateLimit.of({"rate_limit_count": 5}), RateLimit(5, 1))
        self.assertEqual(
            RateLimit.of({"rate_limit_count": 5, "rate_limit_window": 0}),
            RateLimit(5, 1),
        )


class SendBudgetTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.backend = CountingBackend(self.clock)
        self.props: dict[str, Any] = {"rate_limit_count": 3, "rate_limit_window": 10}
        self.held: list[bool] = []
        self.waits = Observations()
        self.budget = self.make_budget()

    def make_budget(self) -> SendBudget:
        return SendBudget(
            "chan",
            self.backend,
            self.clock,
            lambda: RateLimit.of(self.props),
            on_held=lambda held, _limit: self.held.append(held),
            wait_seconds=self.waits,
        )

    def spend(
        self, count: int, budget: SendBudget | None = None
    ) -> list[Deferred[None]]:
        budget = budget or self.budget
        return [ensureDeferred(budget.spend()) for _ in range(count)]

    def fired(self, spends: list[Deferred[None]]) -> list[int]:
        return [i for i, d in enumerate(spends) if d.called]

    def test_unlimited_costs_nothing(self) -> None:
        self.props = {}
        self.successResultOf(ensureDeferred(self.budget.spend()))
        self.assertEqual(self.backend.calls, [])

    def test_excess_waits_in_order(self) -> None:
        """3 per 10 s: 7 sends go 3, 3, 1, a window apart, first come first."""
        spends = self.spend(7)
        self.assertEqual(self.fired(spends), [0, 1, 2])
        self.clock.advance(9.99)
        self.assertEqual(self.fired(spends), [0, 1, 2])
        self.clock.advance(0.01)
        self.assertEqual(self.fired(spends), [0, 1, 2, 3, 4, 5])
        self.clock.advance(10)
        self.assertEqual(self.fired(spends), list(range(7)))
        self.clock.advance(10)  # the held-back status ends after a window
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_one_round_trip_for_a_queue(self) -> None:
        """The sends waiting together are asked for together."""
        self.props["rate_limit_count"] = 1000
        self.backend.slow = True
        spends = self.spend(50)
        self.backend.reply()
        self.backend.reply()
        self.assertEqual(len(self.fired(spends)), 50)
        # the first alone (nothing was waiting), then the 49 that queued up
        self.assertEqual([len(c) for c in self.backend.calls], [1, 49])

    def test_batches_are_bounded(self) -> None:
        self.props["rate_limit_count"] = 1000
        self.backend.slow = True
        spends = self.spend(MAX_BATCH + 20)
        while self.backend.replies:
            self.backend.reply()
        self.assertEqual(len(self.fired(spends)), MAX_BATCH + 20)
        self.assertEqual([len(c) for c in self.backend.calls], [1, MAX_BATCH, 19])

    def test_held_back_while_waiting(self) -> None:
        spends = self.spend(4)
        self.assertEqual(self.held, [True])
        self.assertTrue(self.budget.held)
        self.assertEqual(self.budget.waiting, 1)
        self.clock.advance(10)
        self.successResultOf(spends[3])
        self.assertEqual(self.held, [True], "not until a window without waiting")
        self.clock.advance(9.99)
        self.assertEqual(self.held, [True])
        self.clock.advance(0.01)
        self.assertEqual(self.held, [True, False])
        self.assertFalse(self.budget.held)

    def test_no_flapping_at_the_limit(self) -> None:
        """Held back for a window, then more waits: still held, said once."""
        self.spend(4)
        self.clock.advance(10)
        self.clock.advance(5)
        self.spend(3)
        self.assertEqual(self.held, [True])
        self.clock.advance(5)  # the unhold planned before is off
        self.assertEqual(self.held, [True])
        self.clock.advance(20)
        self.assertEqual(self.held, [True, False])

    def test_margin_keeps_units_spent_longer(self) -> None:
        self.budget = SendBudget(
            "chan", self.backend, self.clock, lambda: RateLimit(1, 10), margin=0.5
        )
        spends = self.spend(2)
        self.clock.advance(10)
        self.assertNoResult(spends[1])
        self.clock.advance(0.5)
        self.successResultOf(spends[1])

    def test_within_the_limit_is_never_held_back(self) -> None:
        self.spend(3)
        self.assertEqual(self.held, [])

    def test_wait_is_measured(self) -> None:
        self.spend(4)
        self.clock.advance(10)
        self.assertEqual(self.waits.values, [0, 0, 0, 10])

    def test_a_higher_limit_applies_to_those_waiting(self) -> None:
        spends = self.spend(6)
        self.props["rate_limit_count"] = 6
        self.budget.changed()
        self.assertEqual(self.fired(spends), list(range(6)))
        self.assertEqual(len(self.clock.getDelayedCalls()), 1, "the unhold")

    def test_removing_the_limit_releases_everyone(self) -> None:
        spends = self.spend(6)
        del self.props["rate_limit_count"]
        self.budget.changed()
        self.assertEqual(self.fired(spends), list(range(6)))
        self.assertEqual(self.held, [True, False])

    def test_a_lower_limit_holds_back_more(self) -> None:
        spends = self.spend(2)
        self.props["rate_limit_count"] = 1
        more = self.spend(1)
        self.assertNoResult(more[0])
        self.clock.advance(10)
        self.successResultOf(more[0])
        self.assertEqual(len(self.fired(spends)), 2)

    def test_cost_counts(self) -> None:
        first = ensureDeferred(self.budget.spend(2))
        second = ensureDeferred(self.budget.spend(2))
        self.successResultOf(first)
        self.assertNoResult(second)
        self.clock.advance(10)
        self.successResultOf(second)

    def test_stop_fails_those_waiting(self) -> None:
        spends = self.spend(5)
        self.budget.stop()
        for d in spends[3:]:
            self.failureResultOf(d, TransportStopped)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.failureResultOf(ensureDeferred(self.budget.spend()), TransportStopped)

    def test_backend_away_fails_those_waiting(self) -> None:
        """Their messages go back to the queue (StoreUnavailable retries later)."""
        self.backend.fail = True
        spends = self.spend(2)
        for d in spends:
            self.failureResultOf(d, StoreUnavailable)
        self.backend.fail = False
        self.successResultOf(ensureDeferred(self.budget.spend()))

    def test_a_cancelled_send_is_skipped(self) -> None:
        """A caller that gives up (its Deferred cancelled) is passed over."""
        spends = self.spend(5)
        spends[3].cancel()
        self.failureResultOf(spends[3])
        self.clock.advance(10)
        self.successResultOf(spends[4])
        self.budget.stop()

    def test_stop_during_a_round_trip(self) -> None:
        """What is granted after the stop is left spent, never handed out."""
        self.backend.slow = True
        spends = self.spend(2)
        self.budget.stop()
        self.backend.reply()
        for d in spends:
            self.failureResultOf(d, TransportStopped)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_two_processes_share_one_budget(self) -> None:
        """Two budgets of the same channel on one backend: 3 in all per window."""
        other = self.make_budget()
        mine = self.spend(3)
        theirs = self.spend(3, other)
        self.assertEqual(self.fired(mine), [0, 1, 2])
        self.assertEqual(self.fired(theirs), [])
        self.clock.advance(10)
        self.assertEqual(self.fired(theirs), [0, 1, 2])
