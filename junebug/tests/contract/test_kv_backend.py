"""The KeyValueBackend contract, run against MemoryBackend and the real Redis.

:class:`KeyValueBackendContract` holds every behaviour both backends share; the
subclasses only say how to build a backend.  Expiry is checked through
``ttl()`` (no test sleeps); MemoryBackend also has its clock advanced to see
keys really expire.
"""

from __future__ import annotations

import socket

from twisted.internet import defer, protocol, reactor
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase

from junebug.errors import StoreUnavailable
from junebug.stores.backend import CappedPush, KeyValueBackend
from junebug.stores.memory import MemoryBackend
from junebug.stores.redis import RedisBackend, connect_redis
from junebug.testing.redis import RedisFixture, start_redis_fixture

# Redis rounds the remaining time to whole seconds as it goes; allow for a slow run.
TTL_SLACK = 2


class _AnswersOnlySelect(protocol.Protocol):
    """A Redis that says OK to the SELECT of the handshake, then goes silent."""

    def connectionMade(self) -> None:
        self.factory.connections.append(self)
        self.answered = False
        self.lost: defer.Deferred[None] = defer.Deferred()

    def dataReceived(self, data: bytes) -> None:
        if not self.answered:
            self.answered = True
            self.transport.write(b"+OK\r\n")

    def connectionLost(self, reason: object) -> None:
        self.lost.callback(None)


class _LoadingRedis(protocol.Protocol):
    """A Redis that accepts the handshake, then is loading its dataset."""

    def dataReceived(self, data: bytes) -> None:
        # One command at a time: the client awaits each of these.
        if b"SELECT" in data:
            self.transport.write(b"+OK\r\n")
        else:
            self.transport.write(b"-LOADING Redis is loading the dataset\r\n")


class KeyValueBackendContract(TestCase):
    """Abstract: subclasses implement :meth:`make_backend`."""

    __test__ = False

    async def make_backend(self, namespace: str | None = None) -> KeyValueBackend:
        """A fresh backend; different namespaces get different key prefixes."""
        raise NotImplementedError

    async def setUp(self) -> None:
        self.backend = await self.make_backend()

    def assertTTL(self, actual: int | None, expected: int) -> None:
        self.assertIsNotNone(actual, "the key has no expiry")
        assert actual is not None
        self.assertTrue(
            expected - TTL_SLACK <= actual <= expected,
            f"ttl {actual}, expected about {expected}",
        )

    # ping, strings, delete, exists

    async def test_ping(self) -> None:
        self.assertIs(await self.backend.ping(), True)

    async def test_get_missing_is_none(self) -> None:
        self.assertIsNone(await self.backend.get("missing"))

    async def test_set_then_get(self) -> None:
        await self.backend.set("k", "v")
        self.assertEqual(await self.backend.get("k"), "v")

    async def test_set_overwrites(self) -> None:
        await self.backend.set("k", "one")
        await self.backend.set("k", "two")
        self.assertEqual(await self.backend.get("k"), "two")

    async def test_values_stay_text(self) -> None:
        for value in ["123", "-4", "1.5", "0", "", " ", "null", "ünïcødé ✓", "a\r\nb"]:
            await self.backend.set("k", value)
            got = await self.backend.get("k")
            self.assertEqual(got, value)
            self.assertIsInstance(got, str)

    async def test_keys_may_hold_any_text(self) -> None:
        for key in ["a:b:c", "with space", "ünï", "*", "[x]"]:
            await self.backend.set(key, key)
        for key in ["a:b:c", "with space", "ünï", "*", "[x]"]:
            self.assertEqual(await self.backend.get(key), key)

    async def test_exists(self) -> None:
        self.assertIs(await self.backend.exists("k"), False)
        await self.backend.set("k", "")
        self.assertIs(await self.backend.exists("k"), True)

    async def test_delete(self) -> None:
        await self.backend.set("a", "1")
        await self.backend.set("b", "2")
        await self.backend.set("c", "3")
        await self.backend.delete("a", "b", "missing")
        self.assertIsNone(await self.backend.get("a"))
        self.assertIsNone(await self.backend.get("b"))
        self.assertEqual(await self.backend.get("c"), "3")

    async def test_delete_nothing(self) -> None:
        await self.backend.set("a", "1")
        await self.backend.delete()
        self.assertEqual(await self.backend.get("a"), "1")

    async def test_delete_any_type(self) -> None:
        await self.backend.sadd("s", "m")
        await self.backend.hset("h", {"f": "v"})
        await self.backend.incr("n")
        await self.backend.delete("s", "h", "n")
        for key in ["s", "h", "n"]:
            self.assertIs(await self.backend.exists(key), False)

    # sets

    async def test_smembers_missing_is_empty(self) -> None:
        self.assertEqual(await self.backend.smembers("s"), set())

    async def test_sadd_smembers(self) -> None:
        await self.backend.sadd("s", "a", "b")
        await self.backend.sadd("s", "b", "c")
        self.assertEqual(await self.backend.smembers("s"), {"a", "b", "c"})
        self.assertIs(await self.backend.exists("s"), True)

    async def test_smembers_returns_a_copy(self) -> None:
        await self.backend.sadd("s", "a")
        members = await self.backend.smembers("s")
        members.add("b")
        self.assertEqual(await self.backend.smembers("s"), {"a"})

    async def test_srem(self) -> None:
        await self.backend.sadd("s", "a", "b", "c")
        await self.backend.srem("s", "a", "missing")
        self.assertEqual(await self.backend.smembers("s"), {"b", "c"})

    async def test_srem_last_member_removes_key(self) -> None:
        await self.backend.sadd("s", "a")
        await self.backend.srem("s", "a")
        self.assertIs(await self.backend.exists("s"), False)

    async def test_srem_missing_key(self) -> None:
        await self.backend.srem("s", "a")
        self.assertIs(await self.backend.exists("s"), False)

    async def test_set_ops_without_members_do_nothing(self) -> None:
        await self.backend.sadd("s")
        self.assertIs(await self.backend.exists("s"), False)
        await self.backend.srem("s")
        self.assertIs(await self.backend.exists("s"), False)
        await self.backend.sadd("s", "a")
        await self.backend.srem("s")
        self.assertEqual(await self.backend.smembers("s"), {"a"})

    async def test_set_members_stay_text(self) -> None:
        await self.backend.sadd("s", "1", "2.5", "")
        self.assertEqual(await self.backend.smembers("s"), {"1", "2.5", ""})

    # hashes

    async def test_hgetall_missing_is_empty(self) -> None:
        self.assertEqual(await self.backend.hgetall("h"), {})

    async def test_hget_missing(self) -> None:
        self.assertIsNone(await self.backend.hget("h", "f"))
        await self.backend.hset("h", {"f": "v"})
        self.assertIsNone(await self.backend.hget("h", "other"))

    async def test_hset_hget_hgetall(self) -> None:
        await self.backend.hset("h", {"a": "1", "b": "two"})
        self.assertEqual(await self.backend.hget("h", "a"), "1")
        self.assertEqual(await self.backend.hgetall("h"), {"a": "1", "b": "two"})

    async def test_hset_merges_fields(self) -> None:
        await self.backend.hset("h", {"a": "1", "b": "2"})
        await self.backend.hset("h", {"b": "3", "c": "4"})
        self.assertEqual(
            await self.backend.hgetall("h"), {"a": "1", "b": "3", "c": "4"}
        )

    async def test_hash_values_stay_text(self) -> None:
        fields = {"n": "42", "f": "0.5", "e": "", "u": "ünï", "j": '{"x": 1}'}
        await self.backend.hset("h", fields)
        self.assertEqual(await self.backend.hgetall("h"), fields)
        self.assertEqual(await self.backend.hget("h", "n"), "42")

    async def test_hgetall_returns_a_copy(self) -> None:
        await self.backend.hset("h", {"a": "1"})
        fields = await self.backend.hgetall("h")
        fields["b"] = "2"
        self.assertEqual(await self.backend.hgetall("h"), {"a": "1"})

    async def test_hset_empty_mapping_creates_nothing(self) -> None:
        await self.backend.hset("h", {})
        await self.backend.hset("h", {}, ttl=100)
        self.assertIs(await self.backend.exists("h"), False)

    async def test_hsetnx_sets_only_an_absent_field(self) -> None:
        """The first claim of a field wins; later ones change nothing."""
        self.assertIs(await self.backend.hsetnx("h", "fate", "sent"), True)
        self.assertIs(await self.backend.hsetnx("h", "fate", "cancelled"), False)
        self.assertEqual(await self.backend.hget("h", "fate"), "sent")
        await self.backend.hset("h", {"other": "1"})
        self.assertEqual(
            await self.backend.hgetall("h"), {"fate": "sent", "other": "1"}
        )

    async def test_hsetnx_beside_existing_fields(self) -> None:
        await self.backend.hset("h", {"message": "{}"})
        self.assertIs(await self.backend.hsetnx("h", "fate", "cancelled"), True)
        self.assertEqual(
            await self.backend.hgetall("h"), {"message": "{}", "fate": "cancelled"}
        )

    async def test_hsetnx_with_ttl_sets_expiry(self) -> None:
        """Claimed or not, the key's expiry is (re)set."""
        self.assertIs(await self.backend.hsetnx("h", "f", "v", ttl=100), True)
        self.assertTTL(await self.backend.ttl("h"), 100)
        self.assertIs(await self.backend.hsetnx("h", "f", "w", ttl=50), False)
        self.assertTTL(await self.backend.ttl("h"), 50)

    async def test_hset_then_get_writes_and_reads_back(self) -> None:
        """The fields are written and the one asked for is read after them."""
        await self.backend.hset("h", {"message": "{}"}, ttl=10)
        self.assertEqual(
            await self.backend.hset_then_get("h", {"e1": "x"}, "message", ttl=100),
            "{}",
        )
        self.assertEqual(await self.backend.hgetall("h"), {"message": "{}", "e1": "x"})
        self.assertTTL(await self.backend.ttl("h"), 100)
        self.assertEqual(
            await self.backend.hset_then_get("h", {"e2": "y"}, "e2", ttl=100), "y"
        )

    async def test_hset_then_get_of_a_missing_field(self) -> None:
        """An event for an unknown MT is still kept; the read finds nothing."""
        self.assertIsNone(
            await self.backend.hset_then_get("h", {"e1": "x"}, "message", ttl=50)
        )
        self.assertEqual(await self.backend.hgetall("h"), {"e1": "x"})
        self.assertTTL(await self.backend.ttl("h"), 50)

    async def test_hset_then_get_needs_a_field(self) -> None:
        with self.assertRaises(ValueError):
            await self.backend.hset_then_get("h", {}, "message", ttl=50)
        self.assertIs(await self.backend.exists("h"), False)

    async def test_hdel(self) -> None:
        await self.backend.hset("h", {"a": "1", "b": "2", "c": "3"})
        await self.backend.hdel("h", "a", "b", "missing")
        self.assertEqual(await self.backend.hgetall("h"), {"c": "3"})

    async def test_hdel_last_field_removes_key(self) -> None:
        await self.backend.hset("h", {"a": "1"})
        await self.backend.hdel("h", "a")
        self.assertIs(await self.backend.exists("h"), False)

    async def test_hdel_missing_key_or_no_fields(self) -> None:
        await self.backend.hdel("h", "a")
        self.assertIs(await self.backend.exists("h"), False)
        await self.backend.hset("h", {"a": "1"})
        await self.backend.hdel("h")
        self.assertEqual(await self.backend.hgetall("h"), {"a": "1"})

    # counters

    async def test_incr_counts_from_one(self) -> None:
        self.assertEqual(await self.backend.incr("n"), 1)
        self.assertEqual(await self.backend.incr("n"), 2)
        self.assertEqual(await self.backend.incr("n"), 3)
        self.assertEqual(await self.backend.get("n"), "3")

    async def test_incr_by_amount(self) -> None:
        """incr adds ``amount`` (one round trip, with the expiry)."""
        self.assertEqual(await self.backend.incr("n", amount=5), 5)
        self.assertEqual(await self.backend.incr("n", ttl=60, amount=3), 8)
        self.assertEqual(await self.backend.ttl("n"), 60)

    async def test_incr_existing_string(self) -> None:
        await self.backend.set("n", "41")
        self.assertEqual(await self.backend.incr("n"), 42)

    async def test_incr_not_an_integer(self) -> None:
        await self.backend.set("n", "abc")
        with self.assertRaises(ValueError):
            await self.backend.incr("n")
        self.assertEqual(await self.backend.get("n"), "abc")

    # expiry

    async def test_ttl_missing_key_is_none(self) -> None:
        self.assertIsNone(await self.backend.ttl("missing"))

    async def test_ttl_none_without_expiry(self) -> None:
        await self.backend.set("k", "v")
        await self.backend.sadd("s", "m")
        await self.backend.hset("h", {"f": "v"})
        await self.backend.incr("n")
        for key in ["k", "s", "h", "n"]:
            self.assertIsNone(await self.backend.ttl(key))

    async def test_set_with_ttl(self) -> None:
        await self.backend.set("k", "v", ttl=100)
        self.assertTTL(await self.backend.ttl("k"), 100)
        self.assertEqual(await self.backend.get("k"), "v")

    async def test_set_replaces_expiry(self) -> None:
        await self.backend.set("k", "v", ttl=100)
        await self.backend.set("k", "w", ttl=10)
        self.assertTTL(await self.backend.ttl("k"), 10)
        await self.backend.set("k", "x")
        self.assertIsNone(await self.backend.ttl("k"))

    async def test_delete_forgets_expiry(self) -> None:
        await self.backend.set("k", "v", ttl=100)
        await self.backend.delete("k")
        await self.backend.set("k", "v")
        self.assertIsNone(await self.backend.ttl("k"))

    async def test_hset_with_ttl_sets_expiry(self) -> None:
        await self.backend.hset("h", {"f": "v"}, ttl=100)
        self.assertTTL(await self.backend.ttl("h"), 100)
        self.assertEqual(await self.backend.hgetall("h"), {"f": "v"})

    async def test_hset_with_ttl_replaces_expiry(self) -> None:
        await self.backend.hset("h", {"f": "v"}, ttl=100)
        await self.backend.hset("h", {"g": "w"}, ttl=10)
        self.assertTTL(await self.backend.ttl("h"), 10)
        self.assertEqual(await self.backend.hgetall("h"), {"f": "v", "g": "w"})

    async def test_hset_without_ttl_keeps_expiry(self) -> None:
        await self.backend.hset("h", {"f": "v"}, ttl=100)
        await self.backend.hset("h", {"g": "w"})
        self.assertTTL(await self.backend.ttl("h"), 100)

    async def test_hset_empty_mapping_with_ttl_refreshes(self) -> None:
        await self.backend.hset("h", {"f": "v"}, ttl=10)
        await self.backend.hset("h", {}, ttl=100)
        self.assertTTL(await self.backend.ttl("h"), 100)
        self.assertEqual(await self.backend.hgetall("h"), {"f": "v"})

    async def test_get_with_ttl_refreshes_expiry(self) -> None:
        await self.backend.set("k", "v", ttl=10)
        self.assertEqual(await self.backend.get("k", ttl=100), "v")
        self.assertTTL(await self.backend.ttl("k"), 100)

    async def test_get_with_ttl_adds_expiry(self) -> None:
        await self.backend.set("k", "v")
        await self.backend.get("k", ttl=100)
        self.assertTTL(await self.backend.ttl("k"), 100)

    async def test_get_without_ttl_keeps_expiry(self) -> None:
        await self.backend.set("k", "v", ttl=10)
        await self.backend.get("k")
        self.assertTTL(await self.backend.ttl("k"), 10)

    async def test_hget_with_ttl_refreshes_expiry(self) -> None:
        await self.backend.hset("h", {"f": "v"}, ttl=10)
        self.assertEqual(await self.backend.hget("h", "f", ttl=100), "v")
        self.assertTTL(await self.backend.ttl("h"), 100)
        # a missing field of an existing hash still refreshes it
        self.assertIsNone(await self.backend.hget("h", "other", ttl=50))
        self.assertTTL(await self.backend.ttl("h"), 50)

    async def test_hgetall_with_ttl_refreshes_expiry(self) -> None:
        await self.backend.hset("h", {"f": "v"}, ttl=10)
        self.assertEqual(await self.backend.hgetall("h", ttl=100), {"f": "v"})
        self.assertTTL(await self.backend.ttl("h"), 100)

    async def test_read_with_ttl_does_not_create_key(self) -> None:
        self.assertIsNone(await self.backend.get("k", ttl=100))
        self.assertIsNone(await self.backend.hget("h", "f", ttl=100))
        self.assertEqual(await self.backend.hgetall("h", ttl=100), {})
        for key in ["k", "h"]:
            self.assertIs(await self.backend.exists(key), False)
            self.assertIsNone(await self.backend.ttl(key))

    async def test_incr_with_ttl(self) -> None:
        self.assertEqual(await self.backend.incr("n", ttl=100), 1)
        self.assertTTL(await self.backend.ttl("n"), 100)
        self.assertEqual(await self.backend.incr("n"), 2)
        self.assertTTL(await self.backend.ttl("n"), 100)
        self.assertEqual(await self.backend.incr("n", ttl=10), 3)
        self.assertTTL(await self.backend.ttl("n"), 10)

    async def test_hdel_keeps_expiry(self) -> None:
        await self.backend.hset("h", {"a": "1", "b": "2"}, ttl=100)
        await self.backend.hdel("h", "a")
        self.assertTTL(await self.backend.ttl("h"), 100)

    # compare-and-set (the cluster's leases)

    async def test_mget(self) -> None:
        await self.backend.set("a", "1")
        await self.backend.sadd("s", "m")
        self.assertEqual(
            await self.backend.mget("a", "missing", "s", "a"), ["1", None, None, "1"]
        )
        self.assertEqual(await self.backend.mget(), [])

    async def test_set_if_absent(self) -> None:
        self.assertIs(await self.backend.set_if_absent("k", "one", 100_000), True)
        self.assertIs(await self.backend.set_if_absent("k", "two", 100_000), False)
        self.assertEqual(await self.backend.get("k"), "one")
        self.assertTTL(await self.backend.ttl("k"), 100)

    async def test_set_if_absent_respects_any_type(self) -> None:
        await self.backend.sadd("s", "m")
        self.assertIs(await self.backend.set_if_absent("s", "v", 1000), False)
        self.assertEqual(await self.backend.smembers("s"), {"m"})

    async def test_expire_if_equal(self) -> None:
        await self.backend.set("k", "mine", ttl=10)
        self.assertIs(await self.renew("k", "mine", 100_000), True)
        self.assertTTL(await self.backend.ttl("k"), 100)
        self.assertIs(await self.renew("k", "yours", 500_000), False)
        self.assertTTL(await self.backend.ttl("k"), 100)
        self.assertIs(await self.renew("gone", "x", 1000), False)
        self.assertIs(await self.backend.exists("gone"), False)

    async def renew(self, key: str, value: str, ttl_ms: int) -> bool:
        [done] = await self.backend.expire_if_equal_many([(key, value)], ttl_ms)
        return done

    async def test_expire_if_equal_many_at_once(self) -> None:
        await self.backend.set("a", "mine", ttl=10)
        await self.backend.set("b", "theirs", ttl=10)
        await self.backend.set("c", "mine", ttl=10)
        done = await self.backend.expire_if_equal_many(
            [("a", "mine"), ("b", "mine"), ("gone", "mine"), ("c", "mine")], 100_000
        )
        self.assertEqual(done, [True, False, False, True])
        self.assertTTL(await self.backend.ttl("a"), 100)
        self.assertTTL(await self.backend.ttl("b"), 10)
        self.assertTTL(await self.backend.ttl("c"), 100)
        self.assertIs(await self.backend.exists("gone"), False)
        self.assertEqual(await self.backend.expire_if_equal_many([], 1000), [])

    async def test_delete_if_equal(self) -> None:
        await self.backend.set("k", "mine")
        self.assertIs(await self.backend.delete_if_equal("k", "yours"), False)
        self.assertEqual(await self.backend.get("k"), "mine")
        self.assertIs(await self.backend.delete_if_equal("k", "mine"), True)
        self.assertIs(await self.backend.exists("k"), False)
        self.assertIs(await self.backend.delete_if_equal("k", "mine"), False)

    async def test_compare_on_another_type_raises_type_error(self) -> None:
        await self.backend.hset("h", {"f": "v"})
        with self.assertRaises(TypeError):
            await self.renew("h", "v", 1000)
        with self.assertRaises(TypeError):
            await self.backend.delete_if_equal("h", "v")
        self.assertEqual(await self.backend.hgetall("h"), {"f": "v"})

    # key prefixes

    async def test_prefixes_isolate_backends(self) -> None:
        one = await self.make_backend("one")
        two = await self.make_backend("two")
        await one.set("k", "1")
        await two.set("k", "2")
        await one.sadd("s", "a")
        await two.sadd("s", "b")
        await one.hset("h", {"f": "1"}, ttl=100)
        await two.hset("h", {"f": "2"})
        await one.incr("n")
        self.assertEqual(await one.get("k"), "1")
        self.assertEqual(await two.get("k"), "2")
        self.assertEqual(await one.smembers("s"), {"a"})
        self.assertEqual(await two.smembers("s"), {"b"})
        self.assertEqual(await one.hgetall("h"), {"f": "1"})
        self.assertEqual(await two.hgetall("h"), {"f": "2"})
        self.assertTTL(await one.ttl("h"), 100)
        self.assertIsNone(await two.ttl("h"))
        self.assertIs(await two.exists("n"), False)
        await two.delete("k", "s", "h")
        self.assertEqual(await one.get("k"), "1")
        self.assertEqual(await one.smembers("s"), {"a"})
        self.assertEqual(await one.hgetall("h"), {"f": "1"})
        self.assertIsNone(await self.backend.get("k"))
        await one.close()
        await two.close()

    # types

    async def test_each_type_under_its_own_key(self) -> None:
        await self.backend.set("string", "v")
        await self.backend.sadd("set", "m")
        await self.backend.hset("hash", {"f": "v"})
        await self.backend.incr("counter")
        self.assertEqual(await self.backend.get("string"), "v")
        self.assertEqual(await self.backend.smembers("set"), {"m"})
        self.assertEqual(await self.backend.hgetall("hash"), {"f": "v"})
        self.assertEqual(await self.backend.get("counter"), "1")

    async def test_set_replaces_any_type(self) -> None:
        await self.backend.sadd("s", "m")
        await self.backend.hset("h", {"f": "v"}, ttl=100)
        await self.backend.set("s", "now a string")
        await self.backend.set("h", "now a string")
        self.assertEqual(await self.backend.get("s"), "now a string")
        self.assertEqual(await self.backend.get("h"), "now a string")
        self.assertIsNone(await self.backend.ttl("h"))

    async def test_wrong_type_raises_type_error(self) -> None:
        await self.backend.set("string", "v")
        await self.backend.sadd("set", "m")
        await self.backend.hset("hash", {"f": "v"})
        b = self.backend
        wrong = [
            ("get on a set", lambda: b.get("set")),
            ("get on a hash", lambda: b.get("hash")),
            ("sadd on a string", lambda: b.sadd("string", "x")),
            ("sadd on a hash", lambda: b.sadd("hash", "x")),
            ("srem on a string", lambda: b.srem("string", "x")),
            ("smembers on a string", lambda: b.smembers("string")),
            ("smembers on a hash", lambda: b.smembers("hash")),
            ("hset on a string", lambda: b.hset("string", {"f": "x"})),
            ("hset on a set", lambda: b.hset("set", {"f": "x"})),
            ("hget on a string", lambda: b.hget("string", "f")),
            ("hgetall on a set", lambda: b.hgetall("set")),
            ("hdel on a string", lambda: b.hdel("string", "f")),
            ("incr on a set", lambda: b.incr("set")),
            ("incr on a hash", lambda: b.incr("hash")),
        ]
        for what, call in wrong:
            try:
                await call()
            except TypeError:
                pass
            else:
                self.fail(f"{what} did not raise TypeError")
        self.assertEqual(await b.get("string"), "v")
        self.assertEqual(await b.smembers("set"), {"m"})
        self.assertEqual(await b.hgetall("hash"), {"f": "v"})

    # capped lists

    async def test_lrange_missing_is_empty(self) -> None:
        self.assertEqual(await self.backend.lrange("l", 0, -1), [])

    async def test_push_capped_newest_first(self) -> None:
        """The last value pushed is the first item, as with LPUSH."""
        await self.backend.push_capped("l", ["a", "b"], cap=10)
        await self.backend.push_capped("l", ["c"], cap=10)
        self.assertEqual(await self.backend.lrange("l", 0, -1), ["c", "b", "a"])

    async def test_push_capped_keeps_the_newest(self) -> None:
        await self.backend.push_capped("l", ["1", "2", "3"], cap=2)
        self.assertEqual(await self.backend.lrange("l", 0, -1), ["3", "2"])
        await self.backend.push_capped("l", ["4"], cap=2)
        self.assertEqual(await self.backend.lrange("l", 0, -1), ["4", "3"])

    async def test_push_capped_many_values(self) -> None:
        """More values than one script call takes are all pushed, in order."""
        values = [str(i) for i in range(1200)]
        await self.backend.push_capped("l", values, cap=2000)
        got = await self.backend.lrange("l", 0, -1)
        self.assertEqual(got, values[::-1])
        await self.backend.push_capped("m", values, cap=700)
        self.assertEqual(await self.backend.lrange("m", 0, -1), values[::-1][:700])

    async def test_push_capped_ttl(self) -> None:
        await self.backend.push_capped("l", ["a"], cap=5, ttl=100)
        self.assertTTL(await self.backend.ttl("l"), 100)
        await self.backend.push_capped("l", ["b"], cap=5, ttl=200)
        self.assertTTL(await self.backend.ttl("l"), 200)
        await self.backend.push_capped("l", ["c"], cap=5)
        self.assertTTL(await self.backend.ttl("l"), 200)

    async def test_push_capped_nothing_creates_nothing(self) -> None:
        await self.backend.push_capped("l", [], cap=5, ttl=100)
        self.assertIs(await self.backend.exists("l"), False)

    async def test_push_capped_refuses_a_cap_below_one(self) -> None:
        with self.assertRaises(ValueError):
            await self.backend.push_capped("l", ["a"], cap=0)

    async def test_lrange_ranges(self) -> None:
        await self.backend.push_capped("l", ["e", "d", "c", "b", "a"], cap=10)
        b = self.backend
        self.assertEqual(await b.lrange("l", 0, 1), ["a", "b"])
        self.assertEqual(await b.lrange("l", 1, 2), ["b", "c"])
        self.assertEqual(await b.lrange("l", -2, -1), ["d", "e"])
        self.assertEqual(await b.lrange("l", 3, 100), ["d", "e"])
        self.assertEqual(await b.lrange("l", -100, 0), ["a"])
        self.assertEqual(await b.lrange("l", 4, 2), [])
        self.assertEqual(await b.lrange("l", 10, 20), [])

    async def test_list_values_stay_text(self) -> None:
        values = ["", "é ☃", '{"json": [1]}', "a\r\nb"]
        await self.backend.push_capped("l", values, cap=10)
        self.assertEqual(await self.backend.lrange("l", 0, -1), values[::-1])

    async def test_list_deleted(self) -> None:
        await self.backend.push_capped("l", ["a"], cap=5, ttl=100)
        await self.backend.delete("l")
        self.assertEqual(await self.backend.lrange("l", 0, -1), [])

    async def test_push_capped_many(self) -> None:
        """Several lists in one call, each with its own cap and expiry."""
        b = self.backend
        await b.push_capped("old", ["x"], cap=10)
        await b.push_capped_many(
            [
                CappedPush("a", ["1", "2", "3"], 2, 100),
                CappedPush("old", ["y"], 10),
                CappedPush("empty", [], 5, 100),
                CappedPush("a", ["4"], 2, 200),
            ]
        )
        self.assertEqual(await b.lrange("a", 0, -1), ["4", "3"])
        self.assertTTL(await b.ttl("a"), 200)
        self.assertEqual(await b.lrange("old", 0, -1), ["y", "x"])
        self.assertIsNone(await b.ttl("old"))
        self.assertIs(await b.exists("empty"), False)
        await b.push_capped_many([])

    async def test_push_capped_many_spanning_several_calls(self) -> None:
        values = [str(i) for i in range(1500)]
        pushes = [CappedPush(f"k{n}", values, 1500, 100) for n in range(3)]
        await self.backend.push_capped_many(pushes)
        for n in range(3):
            got = await self.backend.lrange(f"k{n}", 0, -1)
            self.assertEqual(got, values[::-1])

    async def test_push_capped_many_wrong_type_pushes_nothing(self) -> None:
        await self.backend.set("string", "v")
        with self.assertRaises(TypeError):
            await self.backend.push_capped_many(
                [CappedPush("a", ["1"], 5), CappedPush("string", ["x"], 5)]
            )
        self.assertEqual(await self.backend.lrange("a", 0, -1), [])
        self.assertEqual(await self.backend.get("string"), "v")

    async def test_list_ops_on_other_types_raise_type_error(self) -> None:
        await self.backend.set("string", "v")
        await self.backend.hset("hash", {"f": "v"})
        await self.backend.push_capped("list", ["a"], cap=5)
        b = self.backend
        wrong = [
            lambda: b.push_capped("string", ["x"], cap=5, ttl=100),
            lambda: b.push_capped("hash", ["x"], cap=5),
            lambda: b.lrange("string", 0, -1),
            lambda: b.get("list"),
            lambda: b.hget("list", "f"),
        ]
        for call in wrong:
            with self.assertRaises(TypeError):
                await call()
        self.assertEqual(await b.get("string"), "v")
        self.assertIsNone(await b.ttl("string"))

    async def test_wrong_type_with_ttl_leaves_expiry_alone(self) -> None:
        await self.backend.set("string", "v")
        await self.backend.hset("hash", {"f": "v"})
        b = self.backend
        wrong = [
            lambda: b.get("hash", ttl=100),
            lambda: b.hget("string", "f", ttl=100),
            lambda: b.hgetall("string", ttl=100),
            lambda: b.hset("string", {"f": "x"}, ttl=100),
            lambda: b.incr("hash", ttl=100),
        ]
        for call in wrong:
            with self.assertRaises(TypeError):
                await call()
        self.assertIsNone(await b.ttl("string"))
        self.assertIsNone(await b.ttl("hash"))


class MemoryBackendTests(KeyValueBackendContract):
    __test__ = True

    async def setUp(self) -> None:
        self.clock = Clock()
        await super().setUp()

    async def make_backend(self, namespace: str | None = None) -> KeyValueBackend:
        return MemoryBackend(self.clock, namespace)

    # beyond the contract: time really passes

    async def test_key_expires(self) -> None:
        await self.backend.set("k", "v", ttl=10)
        self.clock.advance(9.9)
        self.assertEqual(await self.backend.get("k"), "v")
        self.clock.advance(0.1)
        self.assertIsNone(await self.backend.get("k"))
        self.assertIs(await self.backend.exists("k"), False)
        self.assertIsNone(await self.backend.ttl("k"))

    async def test_ttl_counts_down(self) -> None:
        await self.backend.set("k", "v", ttl=10)
        self.clock.advance(3)
        self.assertEqual(await self.backend.ttl("k"), 7)
        self.clock.advance(2.5)
        self.assertEqual(await self.backend.ttl("k"), 5)

    async def test_read_with_ttl_keeps_key_alive(self) -> None:
        await self.backend.hset("h", {"f": "v"}, ttl=10)
        self.clock.advance(8)
        await self.backend.hget("h", "f", ttl=10)
        self.clock.advance(8)
        self.assertEqual(await self.backend.hgetall("h", ttl=10), {"f": "v"})
        self.clock.advance(10)
        self.assertEqual(await self.backend.hgetall("h"), {})

    async def test_expired_hash_is_empty(self) -> None:
        await self.backend.hset("h", {"f": "v"}, ttl=5)
        await self.backend.sadd("s", "a")
        self.clock.advance(5)
        self.assertEqual(await self.backend.hgetall("h"), {})
        self.assertIsNone(await self.backend.hget("h", "f"))
        self.assertIs(await self.backend.exists("h"), False)
        self.assertEqual(await self.backend.smembers("s"), {"a"})

    async def test_counter_restarts_after_expiry(self) -> None:
        await self.backend.incr("n", ttl=10)
        await self.backend.incr("n", ttl=10)
        self.clock.advance(10)
        self.assertEqual(await self.backend.incr("n"), 1)
        self.assertIsNone(await self.backend.ttl("n"))

    async def test_expired_key_can_change_type(self) -> None:
        await self.backend.set("k", "v", ttl=1)
        self.clock.advance(1)
        await self.backend.sadd("k", "m")
        self.assertEqual(await self.backend.smembers("k"), {"m"})

    async def test_list_expires(self) -> None:
        await self.backend.push_capped("l", ["a"], cap=5, ttl=10)
        self.clock.advance(9)
        await self.backend.push_capped("l", ["b"], cap=5, ttl=10)
        self.clock.advance(9)
        self.assertEqual(await self.backend.lrange("l", 0, -1), ["b", "a"])
        self.clock.advance(1)
        self.assertEqual(await self.backend.lrange("l", 0, -1), [])

    async def test_lease_primitives_expire_in_milliseconds(self) -> None:
        self.assertIs(await self.backend.set_if_absent("k", "a", 1500), True)
        self.clock.advance(1.4)
        self.assertIs(await self.renew("k", "a", 1500), True)
        self.clock.advance(1.4)
        self.assertEqual(await self.backend.mget("k"), ["a"])
        self.clock.advance(0.1)
        self.assertEqual(await self.backend.mget("k"), [None])
        self.assertIs(await self.renew("k", "a", 1500), False)
        self.assertIs(await self.backend.set_if_absent("k", "b", 1500), True)

    async def test_write_after_expiry_has_no_expiry(self) -> None:
        await self.backend.hset("h", {"f": "v"}, ttl=1)
        self.clock.advance(1)
        await self.backend.hset("h", {"g": "w"})
        self.assertEqual(await self.backend.hgetall("h"), {"g": "w"})
        self.assertIsNone(await self.backend.ttl("h"))


class RedisBackendTests(KeyValueBackendContract):
    """Against the real Redis (``JUNEBUG_TEST_REDIS_URL``); never skipped."""

    __test__ = True

    async def setUp(self) -> None:
        self.redis: RedisFixture = await start_redis_fixture(self, reactor)
        await super().setUp()

    async def make_backend(self, namespace: str | None = None) -> KeyValueBackend:
        return await self.redis.backend(namespace)

    # beyond the contract: what is really stored, connection handling

    async def test_redis_not_ready_is_unavailable(self) -> None:
        """A Redis still loading its data after a restart answers -LOADING:
        that is StoreUnavailable (503, retried later), not a crash."""
        factory = protocol.Factory.forProtocol(_LoadingRedis)
        port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(
            factory
        )
        self.addCleanup(port.stopListening)
        backend = await connect_redis(
            "127.0.0.1", port.getHost().port, clock=reactor, timeout=5
        )
        self.addCleanup(backend.close)
        with self.assertRaises(StoreUnavailable) as caught:
            await backend.get("k")
        self.assertIn("LOADING", str(caught.exception))

    async def test_ttl_ops_survive_an_empty_script_cache(self) -> None:
        """EVALSHA falls back to EVAL when Redis has lost the script."""
        await self.backend.set("k", "v")
        await self.redis.raw("SCRIPT", "FLUSH")
        self.assertEqual(await self.backend.get("k", ttl=50), "v")
        self.assertEqual(await self.backend.ttl("k"), 50)
        self.assertEqual(await self.backend.hget("missing", "f", ttl=50), None)

    async def test_compare_scripts_survive_an_empty_script_cache(self) -> None:
        await self.backend.set("k", "v")
        await self.redis.raw("SCRIPT", "FLUSH")
        self.assertIs(await self.renew("k", "v", 50_000), True)
        await self.redis.raw("SCRIPT", "FLUSH")
        self.assertIs(await self.backend.delete_if_equal("k", "v"), True)

    async def test_keys_carry_the_prefix(self) -> None:
        await self.backend.set("k", "v")
        await self.backend.hset("h", {"f": "v"})
        one = await self.make_backend("one")
        await one.sadd("s", "m")
        p = self.redis.prefix
        self.assertEqual(
            await self.redis.raw_keys(), {f"{p}:k", f"{p}:h", f"{p}:one:s"}
        )
        self.assertEqual(await self.redis.raw("GET", f"{p}:k"), "v")

    async def test_no_prefix(self) -> None:
        bare = await self.redis.backend(prefixed=False)
        key = f"{self.redis.prefix}:bare"
        await bare.set(key, "v")
        self.assertEqual(await self.redis.raw("GET", key), "v")
        self.assertEqual(await self.backend.get("bare"), "v")

    async def test_expiry_lands_on_the_prefixed_key(self) -> None:
        await self.backend.hset("h", {"f": "v"}, ttl=100)
        await self.backend.incr("n", ttl=50)
        self.assertTTL(await self.redis.raw("TTL", f"{self.redis.prefix}:h"), 100)
        self.assertTTL(await self.redis.raw("TTL", f"{self.redis.prefix}:n"), 50)

    async def test_delete_prefix_cleans_up(self) -> None:
        await self.backend.set("a", "1")
        await self.backend.hset("b", {"f": "v"})
        self.assertEqual(await self.redis.delete_prefix(), 2)
        self.assertEqual(await self.redis.raw_keys(), set())

    async def test_is_connected_and_close(self) -> None:
        backend = await self.redis.backend()
        assert isinstance(backend, RedisBackend)
        self.assertIs(backend.is_connected(), True)
        await backend.close()
        self.assertIs(backend.is_connected(), False)
        self.assertIs(await backend.ping(), False)
        with self.assertRaises(StoreUnavailable):
            await backend.get("k")
        await backend.close()  # twice is fine

    async def test_unreachable_server_fails_to_connect(self) -> None:
        clock = Clock()
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        connecting = defer.Deferred.fromCoroutine(
            connect_redis(
                "127.0.0.1", port, clock=clock, reactor=reactor, connect_timeout=3
            )
        )
        clock.advance(3)
        error = await self.assertFailure(connecting, StoreUnavailable)
        self.assertIn("not reachable", str(error))

    async def test_wrong_password_fails_to_connect(self) -> None:
        address = self.redis.address
        with self.assertRaises(StoreUnavailable) as caught:
            await connect_redis(
                address.host,
                address.port,
                address.db,
                password="not-the-password",
                clock=Clock(),
                reactor=reactor,
                connect_timeout=5,
            )
        self.assertIn("auth", str(caught.exception))

    async def test_bad_db_fails_to_connect(self) -> None:
        address = self.redis.address
        with self.assertRaises(StoreUnavailable) as caught:
            await connect_redis(
                address.host,
                address.port,
                db=100000,
                password=address.password,
                clock=Clock(),
                reactor=reactor,
                connect_timeout=5,
            )
        self.assertIn("dbid", str(caught.exception))

    async def _kill_connection(self, backend: RedisBackend) -> None:
        """Have Redis drop the backend's connection; wait until it notices."""
        client_id = await backend._command("CLIENT", "ID")
        connection = backend._client.protocol
        assert connection is not None
        lost = connection.lost
        await self.redis.raw("CLIENT", "KILL", "ID", client_id)
        await lost

    async def test_lost_connection_times_out(self) -> None:
        clock = Clock()
        backend = await self.redis.backend(clock=clock, timeout=2)
        await self._kill_connection(backend)
        self.assertIs(backend.is_connected(), False)
        # nothing to send it on until the client has redialled (the fake
        # clock's back-off timer has not fired)
        reading = defer.Deferred.fromCoroutine(backend.get("k"))
        clock.advance(2.9)
        self.assertNoResult(reading)
        clock.advance(0.1)
        error = await self.assertFailure(reading, StoreUnavailable)
        self.assertIn("timed out after 3s", str(error))

    async def test_reconnects_after_losing_the_connection(self) -> None:
        await self.backend.set("k", "v")
        assert isinstance(self.backend, RedisBackend)
        await self._kill_connection(self.backend)
        self.assertIs(self.backend.is_connected(), False)
        # waits for the client's redial (a tenth of a second)
        self.assertEqual(await self.backend.get("k"), "v")
        self.assertIs(self.backend.is_connected(), True)

    async def test_silent_server_connection_is_dropped(self) -> None:
        factory = protocol.Factory.forProtocol(_AnswersOnlySelect)
        factory.connections = []
        port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(
            factory
        )
        self.addCleanup(port.stopListening)
        clock = Clock()
        backend = await connect_redis(
            "127.0.0.1", port.getHost().port, clock=clock, reactor=reactor, timeout=0.2
        )
        self.addCleanup(backend.close)
        [server] = factory.connections
        reading = defer.Deferred.fromCoroutine(backend.get("k"))
        clock.advance(0.1)
        self.assertNoResult(reading)
        clock.advance(0.1)
        error = await self.assertFailure(reading, StoreUnavailable)
        self.assertIn("no reply from Redis within 0.2s", str(error))
        await server.lost
        self.assertIs(backend.is_connected(), False)
