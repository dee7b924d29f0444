"""The ``take_budget`` contract, against MemoryBackend and the real Redis.

A budget is ``limit`` units per sliding ``window`` seconds.  Time passes with
:meth:`BudgetContract.pass_time`: the memory backend's clock is advanced; for
Redis (whose own clock counts) the test waits that long on the reactor, so
the Redis cases use windows of a fraction of a second.
"""

from __future__ import annotations

from twisted.internet import reactor
from twisted.internet.task import Clock, deferLater
from twisted.trial.unittest import TestCase

from junebug.stores.backend import BudgetGrant, KeyValueBackend
from junebug.stores.memory import MemoryBackend
from junebug.testing.redis import RedisFixture, start_redis_fixture

#: The window of the cases that let time pass (seconds).
WINDOW = 0.3


class BudgetContract(TestCase):
    """Abstract: subclasses build the backend and let time pass."""

    __test__ = False

    async def make_backend(self) -> KeyValueBackend:
        raise NotImplementedError

    async def pass_time(self, seconds: float) -> None:
        raise NotImplementedError

    async def setUp(self) -> None:
        self.backend = await self.make_backend()

    async def test_grants_what_fits(self) -> None:
        grant = await self.backend.take_budget("b", [1, 1, 1], 5, 60)
        self.assertEqual(grant, BudgetGrant(3, 0.0))
        grant = await self.backend.take_budget("b", [1, 1, 1], 5, 60)
        self.assertEqual(grant.granted, 2)
        self.assertTrue(0 < grant.retry_after <= 60, grant)

    async def test_prefix_only_and_whole_requests(self) -> None:
        """A request that does not fit stops the grant: the later ones wait
        too, even if they would fit (order is kept)."""
        await self.backend.take_budget("b", [3], 5, 60)
        grant = await self.backend.take_budget("b", [1, 3, 1], 5, 60)
        self.assertEqual(grant.granted, 1)
        self.assertGreater(grant.retry_after, 0)

    async def test_cost_above_limit_costs_the_limit(self) -> None:
        grant = await self.backend.take_budget("b", [9], 4, 60)
        self.assertEqual(grant.granted, 1)
        grant = await self.backend.take_budget("b", [1], 4, 60)
        self.assertEqual(grant.granted, 0)

    async def test_nothing_fits_when_spent(self) -> None:
        await self.backend.take_budget("b", [2], 2, 60)
        grant = await self.backend.take_budget("b", [1], 2, 60)
        self.assertEqual(grant.granted, 0)
        self.assertTrue(59 < grant.retry_after <= 60, grant)

    async def test_budgets_are_independent(self) -> None:
        await self.backend.take_budget("a", [2], 2, 60)
        self.assertEqual((await self.backend.take_budget("b", [2], 2, 60)).granted, 1)

    async def test_a_lower_limit_applies_at_once(self) -> None:
        await self.backend.take_budget("b", [5], 10, 60)
        self.assertEqual((await self.backend.take_budget("b", [1], 5, 60)).granted, 0)
        self.assertEqual((await self.backend.take_budget("b", [5], 10, 60)).granted, 1)

    async def test_wrong_type_raises_type_error(self) -> None:
        await self.backend.set("s", "x")
        with self.assertRaises(TypeError):
            await self.backend.take_budget("s", [1], 1, 1)

    async def test_budget_key_expires_with_its_window(self) -> None:
        await self.backend.take_budget("b", [1], 1, 60)
        self.assertIs(await self.backend.exists("b"), True)
        ttl = await self.backend.ttl("b")
        self.assertIsNotNone(ttl)
        assert ttl is not None
        self.assertTrue(58 <= ttl <= 61, ttl)
        await self.backend.delete("b")
        self.assertEqual((await self.backend.take_budget("b", [1], 1, 60)).granted, 1)

    # time passing

    async def test_spent_units_come_back_after_the_window(self) -> None:
        await self.backend.take_budget("b", [1, 1], 2, WINDOW)
        grant = await self.backend.take_budget("b", [1], 2, WINDOW)
        self.assertEqual(grant.granted, 0)
        await self.pass_time(grant.retry_after)
        self.assertEqual(
            (await self.backend.take_budget("b", [1, 1], 2, WINDOW)).granted, 2
        )

    async def test_window_slides(self) -> None:
        """Units spent later come back later: it is no fixed window."""
        await self.backend.take_budget("b", [1], 2, WINDOW)
        await self.pass_time(WINDOW / 2)
        await self.backend.take_budget("b", [1], 2, WINDOW)
        grant = await self.backend.take_budget("b", [1, 1], 2, WINDOW)
        self.assertEqual(grant.granted, 0)
        self.assertTrue(0 < grant.retry_after <= WINDOW / 2 + 0.01, grant)
        await self.pass_time(grant.retry_after)
        grant = await self.backend.take_budget("b", [1, 1], 2, WINDOW)
        self.assertEqual(grant.granted, 1, "only the first unit is back")
        self.assertTrue(0 < grant.retry_after <= WINDOW / 2 + 0.01, grant)

    async def test_retry_after_counts_what_the_next_request_needs(self) -> None:
        await self.backend.take_budget("b", [1], 3, WINDOW)
        await self.pass_time(WINDOW / 2)
        await self.backend.take_budget("b", [2], 3, WINDOW)
        grant = await self.backend.take_budget("b", [3], 3, WINDOW)
        self.assertEqual(grant.granted, 0)
        # all three units must go: the later grant's time counts
        self.assertTrue(WINDOW / 2 < grant.retry_after <= WINDOW, grant)

    async def test_key_gone_once_nothing_counts(self) -> None:
        grant = await self.backend.take_budget("b", [1], 1, WINDOW)
        await self.pass_time(WINDOW + 0.01)
        grant = await self.backend.take_budget("b", [], 1, WINDOW)
        self.assertEqual(grant, BudgetGrant(0, 0.0))
        self.assertIs(await self.backend.exists("b"), False)


class MemoryBudgetTests(BudgetContract):
    __test__ = True

    async def make_backend(self) -> KeyValueBackend:
        self.clock = Clock()
        return MemoryBackend(self.clock, "ns")

    async def pass_time(self, seconds: float) -> None:
        self.clock.advance(seconds)

    async def test_exact_boundary(self) -> None:
        """A unit spent at t is free again at exactly t + window."""
        await self.backend.take_budget("b", [1], 1, 10)
        self.clock.advance(9.999)
        self.assertEqual((await self.backend.take_budget("b", [1], 1, 10)).granted, 0)
        self.clock.advance(0.001)
        self.assertEqual((await self.backend.take_budget("b", [1], 1, 10)).granted, 1)


class RedisBudgetTests(BudgetContract):
    """Against the real Redis; the server's clock counts."""

    __test__ = True

    async def make_backend(self) -> KeyValueBackend:
        self.redis: RedisFixture = await start_redis_fixture(self, reactor)
        return await self.redis.backend()

    async def pass_time(self, seconds: float) -> None:
        # Redis counts time with its own clock: the window must really pass.
        await deferLater(reactor, seconds + 0.005, lambda: None)

    async def test_spent_total_kept_beside_the_log(self) -> None:
        await self.backend.take_budget("b", [2, 1], 5, 60)
        raw = await self.redis.backend()
        self.assertEqual(await raw.hget("b:spent", "spent"), "3")
        self.assertIsNotNone(await raw.ttl("b:spent"))
