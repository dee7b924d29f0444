"""A gateway of several members on shared memory backends and a Clock."""

from __future__ import annotations

from collections import Counter

from twisted.trial.unittest import TestCase

from junebug.errors import BrokerError
from junebug.stores import keys
from junebug.testing.cluster import Gateway, Member

FAKE = {"type": "fake", "config": {}}


class ReconcilerTests(TestCase):
    def setUp(self) -> None:
        self.gateway = Gateway()
        self.addCleanup(self.gateway.stop_all)

    def assertEachOnce(self, channels: list[str]) -> dict[str, str]:
        placement = self.gateway.placement()
        self.assertEqual(sorted(placement), sorted(channels))
        for cid, members in placement.items():
            self.assertEqual(len(members), 1, f"{cid} runs on {members}")
        return {cid: members[0] for cid, members in placement.items()}

    async def create(self, count: int) -> list[str]:
        first = self.gateway.members[0]
        return [await first.registry.create(dict(FAKE)) for _ in range(count)]

    async def test_channels_spread_evenly_and_rebalance(self) -> None:
        gateway = self.gateway
        a = await gateway.start()
        channels = await self.create(30)
        self.assertEqual(a.transports(), set(channels))
        await gateway.start()
        await gateway.start()
        await gateway.tick(3)
        where = self.assertEachOnce(channels)
        self.assertEqual(sorted(Counter(where.values()).values()), [10, 10, 10])
        # Every member forwards for every channel (competing consumers).
        for member in gateway.members:
            self.assertEqual(member.registry.running_ids(), sorted(channels))
        await gateway.start()
        await gateway.tick(3)
        after = self.assertEachOnce(channels)
        self.assertEqual(sorted(Counter(after.values()).values()), [6, 8, 8, 8])
        moved = [cid for cid in channels if where[cid] != after[cid]]
        self.assertEqual(len(moved), 6)

    async def test_clean_stop_hands_over_at_once(self) -> None:
        gateway = self.gateway
        a = await gateway.start()
        b = await gateway.start()
        channels = await self.create(4)
        await gateway.tick(2)
        self.assertEachOnce(channels)
        await gateway.stop(a)
        # No tick: the leases were released and b's next pass takes them.
        await b.node.reconciler.reconcile()
        self.assertEqual(b.transports(), set(channels))
        self.assertEqual(await gateway.backend.smembers(keys.CLUSTER_PROCESSES), {b.id})

    async def test_dead_member_loses_its_channels_after_the_lease(self) -> None:
        gateway = self.gateway
        a = await gateway.start()
        channels = await self.create(4)
        b = await gateway.start()
        await gateway.tick(2)
        where = self.assertEachOnce(channels)
        lost = {cid for cid, member in where.items() if member == a.id}
        self.assertTrue(lost)
        await gateway.kill(a)
        await gateway.tick(gateway.config.lease_seconds - 1)
        self.assertFalse(lost & b.transports())  # a's leases still hold
        await gateway.tick(2)
        self.assertEqual(b.transports(), set(channels))

    async def test_changes_through_another_member_reach_the_owner(self) -> None:
        gateway = self.gateway
        a = await gateway.start()
        cid = await a.registry.create({**FAKE, "config": {"number": 1}})
        b = await gateway.start()
        await gateway.tick(1)
        self.assertEqual(a.transports(), {cid})
        # b changes it (no control message here): a picks it up from Redis.
        await b.registry.update(cid, {"config": {"number": 2}})
        self.assertEqual(a.transports(), {cid})
        self.assertEqual(b.transports(), set())
        await gateway.tick(1)
        self.assertEqual(a.transport(cid).config.number, 2)
        self.assertEqual(b.registry.running(cid).properties["config"], {"number": 2})  # type: ignore[union-attr]
        before = a.transport(cid)
        await b.registry.restart(cid)
        await gateway.tick(1)
        self.assertIsNot(a.transport(cid), before)
        self.assertEqual(a.transports(), {cid})
        await b.registry.delete(cid)
        await gateway.tick(1)
        self.assertEqual(a.registry.running_ids(), [])
        self.assertIsNone(await gateway.backend.get(keys.cluster_owner(cid)))

    async def test_created_elsewhere_is_forwarded_here(self) -> None:
        gateway = self.gateway
        a = await gateway.start()
        b = await gateway.start()
        cid = await a.registry.create(dict(FAKE))
        self.assertEqual(a.transports(), {cid})
        await gateway.tick(1)
        self.assertEqual(b.registry.running_ids(), [cid])
        self.assertEachOnce([cid])

    async def test_processes_are_listed_and_the_dead_pruned(self) -> None:
        gateway = self.gateway
        a = await gateway.start()
        b = await gateway.start()
        cid = await a.registry.create(dict(FAKE))
        await gateway.tick(1)
        listed = {info.id: info for info in await a.node.processes()}
        self.assertEqual(set(listed), {a.id, b.id})
        self.assertEqual(listed[a.id].channels, (cid,))
        self.assertEqual((await a.node.owner_view(cid) or {})["process"], a.id)
        await gateway.kill(b)
        await gateway.tick(gateway.config.lease_seconds + 1)
        self.assertEqual([info.id for info in await a.node.processes()], [a.id])
        self.assertEqual(await gateway.backend.smembers(keys.CLUSTER_PROCESSES), {a.id})

    async def test_a_lease_on_a_channel_gone_is_released(self) -> None:
        gateway = self.gateway
        a = await gateway.start()
        # Acquired for a channel deleted before it could start here.
        await a.node.leases.acquire("vanished")
        await gateway.tick(1)
        self.assertEqual(a.node.leases.held(), [])
        self.assertIsNone(await gateway.backend.get(keys.cluster_owner("vanished")))

    async def test_vanished_properties_stop_the_channel_but_keep_queues(self) -> None:
        """Redis emptied (no tombstone): the channel stops, MT waiting in
        its queue stays; deleted through the API: its queues go."""
        gateway = self.gateway
        a = await gateway.start()
        b = await gateway.start()
        kept = await a.registry.create(dict(FAKE))
        deleted = await a.registry.create(dict(FAKE))
        await gateway.tick(1)
        await gateway.backend.delete(f"{kept}:properties")
        await gateway.backend.srem(keys.CHANNELS, kept)
        await a.registry.delete(deleted)
        await gateway.tick(1)
        for member in (a, b):
            self.assertEqual(member.registry.running_ids(), [])
        self.assertTrue(gateway.broker.has_queue(f"{kept}.outbound"))
        self.assertFalse(gateway.broker.has_queue(f"{deleted}.outbound"))

    async def owner_and_other(self) -> tuple[str, Member, Member]:
        """A channel on two members: its id, its owner, the other."""
        a = await self.gateway.start()
        b = await self.gateway.start()
        cid = await a.registry.create(dict(FAKE))
        await self.gateway.tick(1)
        self.assertEqual(b.registry.running_ids(), [cid])
        return (cid, a, b) if cid in a.transports() else (cid, b, a)

    def refuse_outbound(self, cid: str, why: str) -> None:
        """Make consuming the channel's outbound queues fail, as RabbitMQ's
        404 for a deleted queue (or a lost connection) does."""
        broker = self.gateway.broker
        consume = broker.consume

        async def refusing(queue: str, *args: object, **kwargs: object) -> object:
            if queue.startswith(f"{cid}.outbound"):
                raise BrokerError(f"could not consume {queue}: {why}")
            return await consume(queue, *args, **kwargs)  # type: ignore[arg-type]

        broker.consume = refusing  # type: ignore[method-assign]
        self.addCleanup(setattr, broker, "consume", consume)

    async def test_a_channel_deleted_as_it_is_taken_is_no_error(self) -> None:
        """Another process deleted the channel (its queues first) while this
        one took it over: the take gives up quietly, the next pass stops it."""
        cid, owner, other = await self.owner_and_other()
        await owner.registry.delete(cid)
        self.refuse_outbound(cid, "404 NOT_FOUND")
        await other.registry.take(cid)
        await self.gateway.tick(1)
        self.assertEqual(other.registry.running_ids(), [])
        self.assertEqual(self.flushLoggedErrors(BrokerError), [])

    async def test_a_take_that_fails_for_a_stored_channel_is_an_error(self) -> None:
        cid, _owner, other = await self.owner_and_other()
        self.refuse_outbound(cid, "connection lost")
        with self.assertRaises(BrokerError):
            await other.registry.take(cid)
