"""MO parts kept in the store until their message is whole: against the
in-memory store on a fake clock, and once against the real Redis."""

from __future__ import annotations

from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, ensureDeferred, gatherResults
from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase

from junebug.stores.memory import MemoryBackend
from junebug.testing.redis import start_redis_fixture
from junebug.transports.smpp.codec import (
    DataCodings,
    MultipartInfo,
    UnknownDataCodingError,
)
from junebug.transports.smpp.multipart import StoredReassembler


class StoredReassemblerTests(TestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.store = MemoryBackend(self.clock)
        self.published: list[str] = []
        self.reassembler = self.new_reassembler()

    def new_reassembler(self, store: Any = None) -> StoredReassembler:
        return StoredReassembler(store or self.store, "esme@chan", 60, DataCodings())

    async def publish(self, text: str) -> None:
        self.published.append(text)

    async def add(
        self,
        seqnum: int,
        data: bytes,
        *,
        total: int = 3,
        ref: int = 1,
        sender: str = "a",
        recipient: str = "b",
        coding: int = 0,
        reassembler: StoredReassembler | None = None,
    ) -> bool:
        return await (reassembler or self.reassembler).add(
            sender,
            recipient,
            MultipartInfo(ref, total, seqnum, data),
            coding,
            self.publish,
        )

    async def test_out_of_order_parts(self) -> None:
        self.assertFalse(await self.add(3, b"c"))
        self.assertFalse(await self.add(1, b"a"))
        self.assertTrue(await self.add(2, b"b"))
        self.assertEqual(self.published, ["abc"])
        self.assertEqual(await self.store.hgetall(self.key()), {})

    def key(self, ref: int = 1, total: int = 3) -> str:
        return self.reassembler.key("a", "b", MultipartInfo(ref, total, 1, b""))

    async def test_parts_survive_a_restart(self) -> None:
        """Answered parts are in the store: a new process completes them."""
        await self.add(1, b"a")
        await self.add(2, b"b")
        await self.add(3, b"c", reassembler=self.new_reassembler())
        self.assertEqual(self.published, ["abc"])

    async def test_split_character_across_parts(self) -> None:
        await self.add(1, b"\xd8\x3d", total=2, coding=8)
        await self.add(2, b"\xde\x00", total=2, coding=8)
        self.assertEqual(self.published, ["😀"])

    async def test_mixed_data_codings(self) -> None:
        await self.add(1, b"\xe9", total=2, coding=3)
        await self.add(2, b"\x00\xe9", total=2, coding=8)
        self.assertEqual(self.published, ["éé"])

    async def test_keys_keep_messages_apart(self) -> None:
        await self.add(1, b"a1", total=2)
        await self.add(1, b"b1", total=2, sender="other")
        await self.add(1, b"r1", total=2, ref=2)
        await self.add(1, b"t1", total=3)
        await self.add(1, b"x1", total=2, recipient="other")
        await self.add(2, b"b2", total=2, sender="other")
        self.assertEqual(self.published, ["b1b2"])

    async def test_repeated_part_replaces(self) -> None:
        await self.add(1, b"old", total=2)
        await self.add(1, b"new", total=2)
        await self.add(2, b"!", total=2)
        self.assertEqual(self.published, ["new!"])

    async def test_expiry_counts_from_the_last_part(self) -> None:
        await self.add(1, b"a")
        self.clock.advance(50)
        await self.add(2, b"b")
        self.clock.advance(50)
        await self.add(3, b"c")
        self.assertEqual(self.published, ["abc"])
        await self.add(1, b"a", ref=2)
        self.clock.advance(61)
        await self.add(2, b"b", ref=2)
        await self.add(3, b"c", ref=2)
        self.assertEqual(self.published, ["abc"])

    async def test_impossible_part_numbers(self) -> None:
        with self.assertRaises(ValueError):
            await self.add(0, b"")
        with self.assertRaises(ValueError):
            await self.add(4, b"")

    async def test_undecodable_message_is_dropped(self) -> None:
        await self.add(1, b"\x80", total=2)
        with self.assertRaises(UnicodeDecodeError):
            await self.add(2, b"x", total=2)
        self.assertEqual(await self.store.hgetall(self.key(total=2)), {})
        await self.add(1, b"a", total=2, coding=0x77)
        with self.assertRaises(UnknownDataCodingError):
            await self.add(2, b"b", total=2, coding=0x77)

    async def test_failed_publish_keeps_the_parts(self) -> None:
        """The last part is refused; the SMSC's retry of it completes."""
        failing = True

        async def publish(text: str) -> None:
            if failing:
                raise RuntimeError("broker down")
            self.published.append(text)

        info = MultipartInfo(1, 2, 1, b"a")
        await self.reassembler.add("a", "b", info, 0, publish)
        last = MultipartInfo(1, 2, 2, b"b")
        with self.assertRaises(RuntimeError):
            await self.reassembler.add("a", "b", last, 0, publish)
        failing = False
        self.assertTrue(await self.reassembler.add("a", "b", last, 0, publish))
        self.assertEqual(self.published, ["ab"])

    async def test_copies_of_the_last_part_publish_once(self) -> None:
        """Two copies of the last part at once (an SMSC retry overtaking the
        first): one completes the message, the other finds nothing to do."""
        release: Deferred[None] = Deferred()

        async def slow_publish(text: str) -> None:
            await release
            self.published.append(text)

        await self.add(1, b"a", total=2)
        last = MultipartInfo(1, 2, 2, b"b")
        first = ensureDeferred(self.reassembler.add("a", "b", last, 0, slow_publish))
        second = ensureDeferred(self.reassembler.add("a", "b", last, 0, slow_publish))
        release.callback(None)
        results = await gatherResults([first, second])
        self.assertEqual(sorted(results), [False, True])
        self.assertEqual(self.published, ["ab"])


class StoredReassemblerRedisTests(TestCase):
    async def test_across_processes_on_redis(self) -> None:
        """Two reassemblers on two connections share the parts in Redis."""
        redis = await start_redis_fixture(self, reactor)
        published: list[str] = []

        async def publish(text: str) -> None:
            published.append(text)

        one = StoredReassembler(await redis.backend(), "p", 60, DataCodings())
        two = StoredReassembler(await redis.backend(), "p", 60, DataCodings())
        await one.add("a", "b", MultipartInfo(9, 2, 1, b"hello "), 0, publish)
        await two.add("a", "b", MultipartInfo(9, 2, 2, b"world"), 0, publish)
        self.assertEqual(published, ["hello world"])
        self.assertEqual(await redis.raw_keys(), set())
