"""Leases on the memory backend and a Clock: acquire, renew, release, fencing."""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase

from junebug.cluster.leases import Leases, Owner, margin_for
from junebug.errors import TemporaryFailure
from junebug.messages import user_message
from junebug.stores import keys
from junebug.stores.memory import MemoryBackend
from junebug.testing.cluster import Gateway

LEASE = 6.0


class LeaseTests(TestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.backend = MemoryBackend(self.clock)
        self.lost: list[str] = []

    def leases(self, process: str) -> Leases:
        leases = Leases(
            self.backend,
            self.clock,
            process,
            LEASE,
            monotonic=self.clock.seconds,
            on_lost=self.lost.append,
        )
        self.addCleanup(leases.stop)
        return leases

    async def owner(self, channel_id: str) -> Owner | None:
        return Owner.parse(await self.backend.get(keys.cluster_owner(channel_id)))

    async def test_acquire_once_with_growing_tokens(self) -> None:
        a, b = self.leases("a"), self.leases("b")
        self.assertIs(await a.acquire("c1"), True)
        self.assertIs(await a.acquire("c1"), True)  # already mine
        self.assertIs(await b.acquire("c1"), False)
        self.assertEqual(await self.owner("c1"), Owner("a", 1))
        self.assertTrue(a.holds("c1"))
        self.assertFalse(b.holds("c1"))
        await a.release("c1")
        self.assertIsNone(await self.owner("c1"))
        self.assertIs(await b.acquire("c1"), True)
        # b's failed try took token 2: tokens only ever grow.
        self.assertEqual(await self.owner("c1"), Owner("b", 3))
        self.assertEqual(b.token("c1"), 3)

    async def test_renewal_keeps_the_lease(self) -> None:
        a, b = self.leases("a"), self.leases("b")
        await a.acquire("c1")
        for _ in range(10):
            self.clock.advance(LEASE / 3)
            await a.renew_all()
        self.assertTrue(a.holds("c1"))
        self.assertIs(await b.acquire("c1"), False)
        self.assertEqual(self.lost, [])

    async def test_holder_gives_up_before_redis_frees_the_lease(self) -> None:
        """Without renewal the holder's deadline passes first (fencing),
        then Redis frees the key for someone else."""
        a, b = self.leases("a"), self.leases("b")
        await a.acquire("c1")
        self.clock.advance(LEASE - margin_for(LEASE))
        self.assertFalse(a.holds("c1"))
        self.assertEqual(self.lost, ["c1"])
        self.assertEqual(a.held(), [])
        self.assertIs(await b.acquire("c1"), False)  # Redis still has it
        self.clock.advance(margin_for(LEASE))
        self.assertIs(await b.acquire("c1"), True)

    async def test_renewal_finds_the_lease_taken(self) -> None:
        a = self.leases("a")
        await a.acquire("c1")
        await self.backend.set(keys.cluster_owner("c1"), "b:99")
        await a.renew_all()
        self.assertFalse(a.holds("c1"))
        self.assertEqual(self.lost, ["c1"])
        self.assertEqual(await self.owner("c1"), Owner("b", 99))

    async def test_release_only_deletes_my_lease(self) -> None:
        a = self.leases("a")
        await a.acquire("c1")
        await self.backend.set(keys.cluster_owner("c1"), "b:99")
        await a.release("c1")
        self.assertEqual(await self.owner("c1"), Owner("b", 99))

    async def test_late_renewal_reply_does_not_extend_a_passed_deadline(self) -> None:
        """A renewal sent after the deadline passed does not bring the lease
        back, even if Redis says yes: the transport was already stopped."""
        now = [0.0]
        a = Leases(
            self.backend,
            self.clock,
            "a",
            LEASE,
            monotonic=lambda: now[0],
            on_lost=self.lost.append,
        )
        self.addCleanup(a.stop)
        await a.acquire("c1")
        now[0] = LEASE  # paused: no timer ran, the monotonic clock moved on
        self.assertFalse(a.holds("c1"))
        await a.renew_all()
        self.assertFalse(a.holds("c1"))
        self.assertEqual(self.lost, ["c1"])

    def test_owner_parse(self) -> None:
        self.assertEqual(Owner.parse("ab:cd:12"), Owner("ab:cd", 12))
        self.assertIsNone(Owner.parse("garbled"))
        self.assertIsNone(Owner.parse(None))


class FencedChannelTests(TestCase):
    """A holder whose deadline passed stops its transport and refuses MT."""

    async def test_deadline_stops_the_transport(self) -> None:
        gateway = Gateway()
        member = await gateway.start()
        self.addCleanup(gateway.stop_all)
        cid = await member.registry.create({"type": "fake", "config": {}})
        self.assertEqual(member.transports(), {cid})
        member.node.reconciler.stop()  # no renewals: Redis is away, say
        gateway.clock.advance(LEASE)
        self.assertEqual(member.transports(), set())
        self.assertFalse(member.registry.running(cid).owned)  # type: ignore[union-attr]

    async def test_paused_holder_does_not_send(self) -> None:
        """A process paused past its deadline (no timer had a chance to run)
        refuses to hand a message to the transport: it is requeued."""
        gateway = Gateway()
        now = [0.0]
        member = gateway.member(monotonic=lambda: now[0])
        await member.registry.start_all()
        await member.node.start()
        self.addCleanup(gateway.stop_all)
        cid = await member.registry.create({"type": "fake", "config": {}})
        channel = member.registry.running(cid)
        assert channel is not None
        message = user_message(
            to_addr="+1", from_addr="+2", content="hi", transport_name=cid
        )
        await channel._handle_outbound(1, message)
        self.assertEqual(len(member.transport(cid).outbound), 1)
        now[0] = LEASE
        with self.assertRaises(TemporaryFailure):
            await channel._handle_outbound(1, message)
        self.assertEqual(len(member.transport(cid).outbound), 1)
