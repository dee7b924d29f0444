"""The key-value primitives every Junebug store is built on.

Two implementations keep the same contract (``junebug/tests/contract``): Redis
through our RESP client (:mod:`junebug.stores.redis`) and an in-memory one with an
injected clock (:mod:`junebug.stores.memory`).  Values are text; a ``ttl`` in
seconds makes the key expire, ``None`` leaves it without expiry.  The
compare-and-set primitives (``set_if_absent``, ``expire_if_equal_many``,
``delete_if_equal``) take milliseconds: the cluster's leases
(:mod:`junebug.cluster.leases`) are built on them.
"""

from __future__ import annotations

from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from typing import NamedTuple, Protocol

import attrs


class CappedPush(NamedTuple):
    """One list of a :meth:`KeyValueBackend.push_capped_many`."""

    key: str
    values: Sequence[str]
    cap: int
    ttl: int | None = None



@attrs.frozen
class BudgetGrant:
    """What :meth:`KeyValueBackend.take_budget` granted."""

    #: How many of the requests (the first ones, in order) were granted.
    granted: int
    #: Seconds until the first request not granted could fit (0 if all were).
    retry_after: float


class KeyValueBackend(Protocol):
    """Redis-shaped primitives, each a single round trip to the server."""

    async def ping(self) -> bool:
        """Return True if the backend answers."""

    async def get(self, key: str, ttl: int | None = None) -> str | None:
        """Read a string; with ``ttl`` the key's expiry is refreshed if it exists."""

    async def set(self, key: str, value: str, ttl: int | None = None) -> None:
        """Write a string, replacing any expiry with ``ttl``."""

    async def delete(self, *keys: str) -> None:
        """Delete keys; missing keys are ignored."""

    async def exists(self, key: str) -> bool:
        """Return True if the key exists."""

    async def sadd(self, key: str, *members: str) -> None:
        """Add members to a set."""

    async def srem(self, key: str, *members: str) -> None:
        """Remove members from a set."""

    async def smembers(self, key: str) -> AbstractSet[str]:
        """All members of a set (empty if the key is missing)."""

    async def hset(
        self, key: str, mapping: dict[str, str], ttl: int | None = None
    ) -> None:
        """Set hash fields; with ``ttl`` (re)set the key's expiry in the same trip."""

    async def hget(self, key: str, field: str, ttl: int | None = None) -> str | None:
        """Read one hash field; with ``ttl`` refresh the expiry if the key exists."""

    async def hgetall(self, key: str, ttl: int | None = None) -> dict[str, str]:
        """Read a whole hash; with ``ttl`` refresh the expiry if the key exists."""

    async def hset_then_get(
        self, key: str, mapping: dict[str, str], field: str, ttl: int
    ) -> str | None:
        """Set hash fields, (re)set the key's expiry and read ``field``, all
        in one trip (``mapping`` must not be empty)."""

    async def hsetnx(
        self, key: str, field: str, value: str, ttl: int | None = None
    ) -> bool:
        """Set a hash field only if it is absent (atomically); True if this
        call set it.  With ``ttl`` (re)set the key's expiry in the same trip."""

    async def hdel(self, key: str, *fields: str) -> None:
        """Delete hash fields."""

    async def incr(self, key: str, ttl: int | None = None, amount: int = 1) -> int:
        """Add ``amount`` to a counter; with ``ttl`` set its expiry in the same trip."""

    async def push_capped(
        self, key: str, values: Sequence[str], cap: int, ttl: int | None = None
    ) -> None:
        """Push ``values`` on the head of a list (the last one ends up first,
        as ``LPUSH`` does), keep its first ``cap`` items and, with ``ttl``,
        (re)set its expiry: one atomic round trip.  ``cap`` must be positive."""

    async def push_capped_many(self, pushes: Sequence[CappedPush]) -> None:
        """:meth:`push_capped` for several lists, in order, in one round trip
        (Redis: one per 2,000 values).  A key of another type raises
        :class:`TypeError`, and the lists sent with it are not pushed."""

    async def lrange(self, key: str, start: int, stop: int) -> list[str]:
        """Items ``start`` to ``stop`` (inclusive, negative counts from the end)
        of a list; empty if the key is missing."""

    async def ttl(self, key: str) -> int | None:
        """Seconds until the key expires; None if it has no expiry or is missing."""

    async def mget(self, *keys: str) -> list[str | None]:
        """The strings at ``keys``, in order; ``None`` for a missing key or
        one holding another type."""

    async def set_if_absent(self, key: str, value: str, ttl_ms: int) -> bool:
        """Write ``value`` expiring in ``ttl_ms`` milliseconds unless the key
        exists; True if it was written."""

    async def expire_if_equal_many(
        self, pairs: Sequence[tuple[str, str]], ttl_ms: int
    ) -> list[bool]:
        """For each ``(key, value)``: set the key's expiry to ``ttl_ms``
        milliseconds if it holds ``value`` (atomically, all in one round
        trip); a True or False per pair, in order, for whether it did."""

    async def delete_if_equal(self, key: str, value: str) -> bool:
        """Delete the key if it holds ``value`` (atomically); True if it did."""

    async def take_budget(
        self, key: str, costs: Sequence[int], limit: int, window: float
    ) -> BudgetGrant:
        """Spend from a sliding-window budget of ``limit`` units per ``window`` s.

        The budget at ``key`` remembers what was spent when; what was spent
        more than ``window`` seconds ago is free again.  The longest prefix of
        ``costs`` (each at least 1; one above ``limit`` costs ``limit``) that
        fits what is free is spent, at once, and the grant says how many
        requests that was and, if not all, when the next could fit.  The key
        expires once nothing in it counts any more.  (Redis keeps the total
        spent in a second key, ``<key>:spent``.)
        """

    async def close(self) -> None:
        """Release connections."""
