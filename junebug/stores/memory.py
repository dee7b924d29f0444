"""An in-memory :class:`~junebug.stores.backend.KeyValueBackend` with an injected clock.

Used by ``jb --embedded`` and by unit tests.  Nothing persists across restarts.
Expiry follows the injected ``IReactorTime``, so ``task.Clock`` drives TTLs in
tests exactly as time drives them in Redis.
"""

from __future__ import annotations

import builtins
import math
from collections import deque
from collections.abc import Sequence

from twisted.internet.interfaces import IReactorTime

from junebug.stores.backend import BudgetGrant, CappedPush


class _Spending:
    """A send budget's log: ``(time, units)`` per grant, oldest first."""

    __slots__ = ("entries", "spent")

    def __init__(self) -> None:
        self.entries: deque[tuple[float, int]] = deque()
        self.spent = 0

    def forget_before(self, cutoff: float) -> None:
        while self.entries and self.entries[0][0] <= cutoff:
            self.spent -= self.entries.popleft()[1]

    def free_at(self, needed: int, window: float) -> float | None:
        """When ``needed`` more units will have left the window."""
        freed = 0
        for at, units in self.entries:
            freed += units
            if freed >= needed:
                return at + window
        return None


_Value = str | set[str] | dict[str, str] | list[str] | _Spending


class MemoryBackend:
    """Dict-backed store with Redis semantics for the subset Junebug uses."""

    def __init__(self, clock: IReactorTime, key_prefix: str | None = None) -> None:
        self._clock = clock
        self._prefix = f"{key_prefix}:" if key_prefix else ""
        self._data: dict[str, _Value] = {}
        self._expiry: dict[str, float] = {}

    def _key(self, key: str) -> str:
        return self._prefix + key

    def _live(self, key: str) -> _Value | None:
        deadline = self._expiry.get(key)
        if deadline is not None and self._clock.seconds() >= deadline:
            self._data.pop(key, None)
            self._expiry.pop(key, None)
        return self._data.get(key)

    def _expire(self, key: str, ttl: int | None) -> None:
        if ttl is None:
            return
        if key in self._data:
            self._expiry[key] = self._clock.seconds() + ttl

    async def ping(self) -> bool:
        return True

    async def get(self, key: str, ttl: int | None = None) -> str | None:
        k = self._key(key)
        value = self._live(k)
        if value is None:
            return None
        if not isinstance(value, str):
            raise TypeError(f"{key} does not hold a string")
        self._expire(k, ttl)
        return value

    async def set(self, key: str, value: str, ttl: int | None = None) -> None:
        k = self._key(key)
        self._data[k] = value
        self._expiry.pop(k, None)
        self._expire(k, ttl)

    async def delete(self, *keys: str) -> None:
        for key in keys:
            k = self._key(key)
            self._data.pop(k, None)
            self._expiry.pop(k, None)

    async def exists(self, key: str) -> bool:
        return self._live(self._key(key)) is not None

    def _set_at(self, k: str) -> builtins.set[str]:
        value = self._live(k)
        if value is None:
            new: builtins.set[str] = set()
            self._data[k] = new
            return new
        if not isinstance(value, set):
            raise TypeError(f"{k} does not hold a set")
        return value

    def _hash_at(self, k: str) -> dict[str, str]:
        value = self._live(k)
        if value is None:
            new: dict[str, str] = {}
            self._data[k] = new
            return new
        if not isinstance(value, dict):
            raise TypeError(f"{k} does not hold a hash")
        return value

    def _drop_if_empty(self, k: str) -> None:
        if not self._data.get(k):
            self._data.pop(k, None)
            self._expiry.pop(k, None)

    async def sadd(self, key: str, *members: str) -> None:
        if members:
            self._set_at(self._key(key)).update(members)

    async def srem(self, key: str, *members: str) -> None:
        if not members:
            return
        k = self._key(key)
        self._set_at(k).difference_update(members)
        self._drop_if_empty(k)

    async def smembers(self, key: str) -> builtins.set[str]:
        value = self._live(self._key(key))
        if value is None:
            return set()
        if not isinstance(value, set):
            raise TypeError(f"{key} does not hold a set")
        return set(value)

    async def hset(
        self, key: str, mapping: dict[str, str], ttl: int | None = None
    ) -> None:
        k = self._key(key)
        if mapping:
            self._hash_at(k).update(mapping)
        self._expire(k, ttl)

    def _existing_hash(self, key: str) -> dict[str, str] | None:
        value = self._live(self._key(key))
        if value is not None and not isinstance(value, dict):
            raise TypeError(f"{key} does not hold a hash")
        return value

    async def hget(self, key: str, field: str, ttl: int | None = None) -> str | None:
        value = self._existing_hash(key)
        if value is None:
            return None
        self._expire(self._key(key), ttl)
        return value.get(field)

    async def hgetall(self, key: str, ttl: int | None = None) -> dict[str, str]:
        value = self._existing_hash(key)
        if value is None:
            return {}
        self._expire(self._key(key), ttl)
        return dict(value)

    async def hset_then_get(
        self, key: str, mapping: dict[str, str], field: str, ttl: int
    ) -> str | None:
        if not mapping:
            raise ValueError("hset_then_get needs a field to set")
        await self.hset(key, mapping, ttl=ttl)
        return await self.hget(key, field)

    async def hsetnx(
        self, key: str, field: str, value: str, ttl: int | None = None
    ) -> bool:
        k = self._key(key)
        fields = self._hash_at(k)
        added = field not in fields
        if added:
            fields[field] = value
        self._expire(k, ttl)
        return added

    async def hdel(self, key: str, *fields: str) -> None:
        value = self._existing_hash(key) if fields else None
        if value is not None:
            for field in fields:
                value.pop(field, None)
            self._drop_if_empty(self._key(key))

    async def incr(self, key: str, ttl: int | None = None, amount: int = 1) -> int:
        k = self._key(key)
        value = self._live(k)
        if value is not None and not isinstance(value, str):
            raise TypeError(f"{key} does not hold a string")
        count = int(value) + amount if value is not None else amount
        self._data[k] = str(count)
        self._expire(k, ttl)
        return count

    def _existing_list(self, key: str) -> list[str] | None:
        value = self._live(self._key(key))
        if value is not None and not isinstance(value, list):
            raise TypeError(f"{key} does not hold a list")
        return value

    async def push_capped(
        self, key: str, values: Sequence[str], cap: int, ttl: int | None = None
    ) -> None:
        await self.push_capped_many([CappedPush(key, values, cap, ttl)])

    async def push_capped_many(self, pushes: Sequence[CappedPush]) -> None:
        for push in pushes:
            if push.cap < 1:
                raise ValueError(f"cap must be positive, not {push.cap}")
        # Checked first: one key of another type and nothing is pushed.
        existing = [self._existing_list(push.key) for push in pushes]
        for push, items in zip(pushes, existing, strict=True):
            k = self._key(push.key)
            if not push.values:
                if items is not None:
                    self._expire(k, push.ttl)
                continue
            current = self._existing_list(push.key)  # a key may come twice
            self._data[k] = [*reversed(push.values), *(current or [])][: push.cap]
            self._expire(k, push.ttl)

    async def lrange(self, key: str, start: int, stop: int) -> list[str]:
        value = self._existing_list(key)
        if value is None:
            return []
        size = len(value)
        first = max(start + size if start < 0 else start, 0)
        last = stop + size if stop < 0 else min(stop, size - 1)
        return value[first : last + 1] if first <= last else []

    async def ttl(self, key: str) -> int | None:
        k = self._key(key)
        if self._live(k) is None:
            return None
        deadline = self._expiry.get(k)
        if deadline is None:
            return None
        return math.ceil(deadline - self._clock.seconds())

    async def mget(self, *keys: str) -> list[str | None]:
        values = [self._live(self._key(key)) for key in keys]
        return [value if isinstance(value, str) else None for value in values]

    def _string_at(self, key: str) -> str | None:
        value = self._live(self._key(key))
        if value is not None and not isinstance(value, str):
            raise TypeError(f"{key} does not hold a string")
        return value

    async def set_if_absent(self, key: str, value: str, ttl_ms: int) -> bool:
        k = self._key(key)
        if self._live(k) is not None:
            return False
        self._data[k] = value
        self._expiry[k] = self._clock.seconds() + ttl_ms / 1000
        return True

    async def expire_if_equal_many(
        self, pairs: Sequence[tuple[str, str]], ttl_ms: int
    ) -> list[bool]:
        done = []
        for key, value in pairs:
            equal = self._string_at(key) == value
            if equal:
                self._expiry[self._key(key)] = self._clock.seconds() + ttl_ms / 1000
            done.append(equal)
        return done

    async def delete_if_equal(self, key: str, value: str) -> bool:
        if self._string_at(key) != value:
            return False
        await self.delete(key)
        return True

    async def take_budget(
        self, key: str, costs: Sequence[int], limit: int, window: float
    ) -> BudgetGrant:
        k = self._key(key)
        value = self._live(k)
        if value is None:
            value = self._data[k] = _Spending()
        elif not isinstance(value, _Spending):
            raise TypeError(f"{key} does not hold a budget")
        now = self._clock.seconds()
        value.forget_before(now - window)
        granted = units = 0
        for cost in costs:
            cost = min(max(cost, 1), limit)
            if value.spent + units + cost > limit:
                break
            units += cost
            granted += 1
        if units:
            value.entries.append((now, units))
            value.spent += units
        retry_after = 0.0
        if granted < len(costs):
            needed = value.spent + min(max(costs[granted], 1), limit) - limit
            free_at = value.free_at(needed, window)
            retry_after = window if free_at is None else free_at - now
        if value.entries:
            self._expiry[k] = value.entries[-1][0] + window
        else:
            self._data.pop(k, None)
            self._expiry.pop(k, None)
        return BudgetGrant(granted, retry_after)

    async def close(self) -> None:
        return None
