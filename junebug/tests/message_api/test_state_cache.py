"""The state caches: bounded in memory, shared in Redis."""

from __future__ import annotations

from twisted.internet import reactor
from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase

from junebug.message_api.state_cache import (
    BoundedMemoryBackend,
    MemoryStateCache,
    RedisStateCache,
    open_state_cache,
)
from junebug.messages import ack, user_message
from junebug.testing.redis import start_redis_fixture


def inbound(n: int) -> dict[str, object]:
    return user_message(
        to_addr="2020",
        from_addr=f"+2782000{n:04d}",
        transport_name="ch",
        content=f"msg {n}",
        message_id=f"in-{n}",
    )


class BoundedMemoryBackendTests(TestCase):
    async def test_least_recently_used_is_evicted(self) -> None:
        """Past max_keys, the hash used longest ago goes first; reads count as use."""
        backend = BoundedMemoryBackend(Clock(), max_keys=3)
        for key in ("a", "b", "c"):
            await backend.hset(key, {"f": key})
        self.assertEqual(await backend.hget("a", "f"), "a")  # a is now newest
        await backend.hset("d", {"f": "d"})
        self.assertEqual(len(backend), 3)
        self.assertIsNone(await backend.hget("b", "f"))
        for key in ("a", "c", "d"):
            self.assertEqual(await backend.hgetall(key), {"f": key})

    async def test_expired_keys_are_forgotten(self) -> None:
        clock = Clock()
        backend = BoundedMemoryBackend(clock, max_keys=10)
        await backend.hset("a", {"f": "1"}, ttl=5)
        clock.advance(6)
        self.assertIsNone(await backend.hget("a", "f"))
        self.assertEqual(len(backend), 0)

    async def test_delete(self) -> None:
        backend = BoundedMemoryBackend(Clock(), max_keys=10)
        await backend.hset("a", {"f": "1"})
        await backend.delete("a")
        self.assertEqual(len(backend), 0)


class MemoryStateCacheTests(TestCase):
    async def test_bounded_and_expiring(self) -> None:
        """max_size messages at most; each kept ``timeout`` seconds."""
        clock = Clock()
        cache = await open_state_cache(clock, "memory", {"max_size": 2, "timeout": 60})
        self.assertIsInstance(cache, MemoryStateCache)
        store = cache.store
        for n in range(3):
            await store.store_inbound("rp", inbound(n))
        self.assertIsNone(await store.load_inbound("rp", "in-0"))
        self.assertEqual(
            (await store.load_inbound("rp", "in-2") or {})["content"], "msg 2"
        )
        await store.store_outbound("rp", "out-1", {"event_url": "http://x/"})
        clock.advance(61)
        self.assertIsNone(await store.load_outbound("rp", "out-1"))
        self.assertIsNone(await store.load_inbound("rp", "in-2"))
        await cache.close()


class RedisStateCacheTests(TestCase):
    async def test_shared_through_redis(self) -> None:
        """Two caches on one Redis see each other's messages, under Junebug's keys."""
        redis = await start_redis_fixture(self, reactor)
        config = {
            "host": redis.address.host,
            "port": redis.address.port,
            "db": redis.address.db,
            "password": redis.address.password,
            "key_prefix": redis.prefix,
            "timeout": 120,
        }
        one = await open_state_cache(reactor, "redis", config)
        self.addCleanup(one.close)
        two = await open_state_cache(reactor, "redis", config)
        self.addCleanup(two.close)
        self.assertIsInstance(one, RedisStateCache)
        await one.store.store_inbound("rp", inbound(1))
        await one.store.store_outbound(
            "rp", "out-1", {"event_url": "http://x/", "event_auth_token": "t"}
        )
        await one.store.store_event_and_load_outbound("rp", ack("out-1", "smsc", "rp"))
        self.assertEqual(
            (await two.store.load_inbound("rp", "in-1") or {})["content"], "msg 1"
        )
        self.assertEqual(
            await two.store.load_outbound("rp", "out-1"),
            {"event_url": "http://x/", "event_auth_token": "t"},
        )
        keys = await redis.raw_keys()
        self.assertEqual(
            keys,
            {
                f"{redis.prefix}:rp:inbound_messages:in-1",
                f"{redis.prefix}:rp:outbound_messages:out-1",
            },
        )
        ttl = await redis.raw("TTL", f"{redis.prefix}:rp:inbound_messages:in-1")
        self.assertTrue(0 < int(str(ttl)) <= 120)
