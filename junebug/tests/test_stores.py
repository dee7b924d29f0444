"""The domain stores over the key-value contract: keys, TTLs, rate buckets."""

from __future__ import annotations

from pathlib import Path

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase, TestCase

from junebug.messages import ack, nack, user_message
from junebug.stores import keys
from junebug.stores.channels import ChannelStore
from junebug.stores.memory import MemoryBackend
from junebug.stores.messages import MessageStore
from junebug.stores.rates import RateStore
from junebug.stores.status import StatusStore


class StoreTests(TestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.backend = MemoryBackend(self.clock)

    async def test_channel_store_keys(self) -> None:
        """Properties live at <id>:properties and ids in the 'channels' set."""
        store = ChannelStore(self.backend)
        await store.save("b", {"type": "t"})
        await store.save("a", {"type": "u"})
        self.assertEqual(await store.list_ids(), ["a", "b"])
        self.assertEqual(await self.backend.get("a:properties"), '{"type": "u"}')
        await store.delete("a")
        self.assertEqual(await store.list_ids(), ["b"])
        self.assertIsNone(await store.load("a"))

    async def test_inbound_expires_after_ttl_and_reads_refresh(self) -> None:
        """Inbound messages expire after the inbound TTL; a read refreshes it."""
        store = MessageStore(self.backend, inbound_ttl=600, outbound_ttl=172800)
        msg = user_message(to_addr="a", from_addr="b", transport_name="c", content="x")
        await store.store_inbound("c", msg)
        key = f"c:inbound_messages:{msg['message_id']}"
        self.assertEqual(await self.backend.ttl(key), 600)
        self.clock.advance(500)
        self.assertEqual(await store.load_inbound("c", msg["message_id"]), msg)
        self.clock.advance(500)
        self.assertIsNotNone(await store.load_inbound("c", msg["message_id"]))
        self.clock.advance(601)
        self.assertIsNone(await store.load_inbound("c", msg["message_id"]))

    async def test_outbound_record_and_events(self) -> None:
        """Events are stored beside the record and listed oldest first."""
        store = MessageStore(self.backend, inbound_ttl=600, outbound_ttl=100)
        await store.store_outbound("c", "m1", {"event_url": "http://e"})
        first = ack("m1", "s1", "c")
        first["timestamp"] = "2026-01-01 00:00:01.000000"
        second = nack("m1", "bad", "c")
        second["timestamp"] = "2026-01-01 00:00:00.000000"
        self.assertEqual(
            await store.store_event_and_load_outbound("c", first),
            {"event_url": "http://e"},
        )
        await store.store_event_and_load_outbound("c", second)
        events = await store.load_events("c", "m1")
        self.assertEqual([e["event_type"] for e in events], ["nack", "ack"])
        self.assertEqual(
            (await store.load_outbound("c", "m1")) or {}, {"event_url": "http://e"}
        )
        self.assertEqual(await self.backend.ttl("c:outbound_messages:m1"), 100)
        self.assertEqual(await store.load_events("c", "unknown"), [])
        orphan = ack("m2", "s2", "c")
        self.assertIsNone(await store.store_event_and_load_outbound("c", orphan))
        self.assertEqual(len(await store.load_events("c", "m2")), 1)

    async def test_rates_use_previous_bucket(self) -> None:
        """A rate is the previous complete bucket's count over the window."""
        rates = RateStore(self.backend, self.clock, window=2.0)
        self.clock.advance(10)
        for _ in range(3):
            await rates.increment("c", "outbound")
        self.assertEqual(await rates.rate("c", "outbound"), 0)
        self.assertEqual(await self.backend.ttl("c:outbound:5"), 4)
        self.clock.advance(2)
        self.assertEqual(await rates.rate("c", "outbound"), 1.5)
        self.clock.advance(2)
        self.assertEqual(await rates.rate("c", "outbound"), 0)

    async def test_stop_waits_for_a_flush_in_flight(self) -> None:
        """Stopping while a periodic flush is still writing waits for it, so
        the backend is not closed under it (its counts were lost and a failure
        logged)."""
        rates = RateStore(self.backend, self.clock, window=4.0)
        rates.start()
        await rates.increment("c", "outbound")
        written: Deferred[None] = Deferred()
        real_incr = self.backend.incr

        async def slow_incr(key: str, ttl: int | None = None, amount: int = 1) -> int:
            await written
            return await real_incr(key, ttl=ttl, amount=amount)

        self.backend.incr = slow_incr  # type: ignore[method-assign]
        self.clock.advance(rates.flush_interval)
        stopping = ensureDeferred(rates.stop())
        self.assertNoResult(stopping)
        written.callback(None)
        await stopping
        bucket = int(self.clock.seconds() / 4.0)
        self.assertEqual(await self.backend.get(f"c:outbound:{bucket}"), "1")

    async def test_status_per_component(self) -> None:
        """The latest status per component replaces the earlier one."""
        from junebug.messages import status_event

        store = StatusStore(self.backend)
        for kind in ("binding", "bound"):
            await store.save(
                "c",
                status_event(
                    component="smpp",
                    status="ok",
                    type=kind,
                    message="",
                    transport_name="c",
                ),
            )
        statuses = await store.load("c")
        self.assertEqual(list(statuses), ["smpp"])
        self.assertEqual(statuses["smpp"]["type"], "bound")


class KeyNameTests(SynchronousTestCase):
    """Every Redis key is built in junebug.stores.keys, named as the original's."""

    def test_transport_keys(self) -> None:
        self.assertEqual(
            keys.dmark_session("c1", "t9"), "vumi.transports.dmark_ussd:c1:session:t9"
        )
        self.assertEqual(
            keys.http_provider_message("c1", "p7"), "c1:http:provider_message_id:p7"
        )
        self.assertEqual(
            keys.smpp_remote_message("sys@c1", "ab"), "smpp:sys@c1:remote_message:ab"
        )
        self.assertEqual(
            keys.smpp_multipart("sys@c1", "123", "456", 7, 3),
            "smpp:sys@c1:multipart:123:456:7:3",
        )

    def test_transports_build_no_keys_of_their_own(self) -> None:
        """No transport module spells a key prefix itself."""
        import junebug.transports

        root = Path(junebug.transports.__file__).parent
        spelled = [
            str(path.relative_to(root))
            for path in root.rglob("*.py")
            for marker in (
                "vumi.transports.dmark_ussd:",
                ":provider_message_id:",
                ":remote_message:",
                ":multipart:",
            )
            if marker in path.read_text()
        ]
        self.assertEqual(spelled, [])
