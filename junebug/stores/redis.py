"""The Redis :class:`~junebug.stores.backend.KeyValueBackend`, over our RESP client.

:func:`connect_redis` opens a :class:`~junebug.stores.resp.RespClient` (one
pipelined connection, redialled with back-off when lost) and waits until it
is usable.  No call hangs: one that gets no reply within ``timeout`` seconds
fails and its connection is dropped (so a half-open connection gets
redialled), and one still waiting for a connection fails a moment later;
both raise :class:`~junebug.errors.StoreUnavailable`.

A call that takes a ``ttl`` runs a small Lua script that runs the command and
then ``EXPIRE``: one round trip, atomic, and a command that fails
(``WRONGTYPE``) leaves the expiry untouched, as :class:`MemoryBackend` does.
The script is sent by its SHA1 (``EVALSHA``); only when Redis answers
``NOSCRIPT`` (its script cache is empty after a restart or ``SCRIPT FLUSH``) is
it sent whole with ``EVAL``, which caches it again.

Redis errors are raised as the in-memory backend raises them: ``TypeError`` for
an operation against a key of another type, ``ValueError`` for ``incr`` of a
value that is not an integer.  The reactor that dials and the clock that
times are injected.
"""

from __future__ import annotations

import builtins
import functools
import hashlib
from collections.abc import Iterable, Sequence
from typing import Final, cast

from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime

from junebug.errors import StoreUnavailable
from junebug.reactors import TimeTCPReactor
from junebug.stores.backend import BudgetGrant, CappedPush
from junebug.stores.redis_address import RedisAddress
from junebug.stores.resp import (
    RedisConnectionError,
    RedisReplyError,
    RedisSetupError,
    RespClient,
)

__all__ = ["RedisBackend", "connect_redis", "redis_backend"]

# Runs ARGV[2] (a command taking the key first, its arguments from ARGV[3]) on
# KEYS[1], then sets the key's expiry to ARGV[1] seconds.  EXPIRE on a missing
# key does nothing, so a read refreshes only a key that exists; an error in the
# command aborts the script before the EXPIRE.  (Lua's unpack() takes a few
# thousand arguments: far more than a Junebug hash has fields.)
_WITH_EXPIRY: Final = """\
local reply = redis.call(ARGV[2], KEYS[1], unpack(ARGV, 3))
redis.call('EXPIRE', KEYS[1], ARGV[1])
return reply
"""

# Compare-and-expire, for every key at once: KEYS[i] gets the expiry ARGV[1]
# (ms) only while it holds ARGV[i + 1]; the reply has a 1 or 0 per key.
# Compare-and-delete acts on KEYS[1] only while it holds ARGV[1].  (GET on a
# key of another type is a WRONGTYPE error, as in memory.)
_EXPIRE_IF_EQUAL: Final = """\
local done = {}
for i, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[i + 1] then
    done[i] = redis.call('PEXPIRE', key, ARGV[1])
  else
    done[i] = 0
  end
end
return done
"""
_DELETE_IF_EQUAL: Final = """\
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


@functools.cache
def _sha(script: str) -> str:
    """Redis names a cached script by its SHA1."""
    return hashlib.sha1(script.encode(), usedforsecurity=False).hexdigest()


_WITH_EXPIRY_SHA: Final = _sha(_WITH_EXPIRY)

# Writes the fields ARGV[3..] into the hash KEYS[1], sets its expiry to
# ARGV[1] seconds and returns field ARGV[2]: an event stored against its MT and
# the MT's record read back, one round trip instead of two.
_HSET_THEN_GET: Final = """\
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
redis.call('EXPIRE', KEYS[1], ARGV[1])
return redis.call('HGET', KEYS[1], ARGV[2])
"""
_HSET_THEN_GET_SHA: Final = _sha(_HSET_THEN_GET)


# A sliding-window send budget (see KeyValueBackend.take_budget).  KEYS[1] is
# a sorted set of grants, member "<seq>:<units>" scored by the time granted in
# microseconds of the server's clock (one clock for every process); KEYS[2] a
# hash of the units they add up to ("spent") and the grant sequence ("seq"),
# so a call reads only the grants leaving the window, not all of them.
# ARGV: the window in microseconds, the limit, then the costs in order.
# Returns {requests granted, microseconds until the next one could fit}.
_TAKE_BUDGET: Final = """\
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local window = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local function units(member) return tonumber(string.match(member, ':(%d+)$')) end
local spent = tonumber(redis.call('HGET', KEYS[2], 'spent') or '0')
local gone = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - window)
for _, member in ipairs(gone) do spent = spent - units(member) end
if #gone > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window) end
if redis.call('ZCARD', KEYS[1]) == 0 then spent = 0 end
local function cost(i) return math.min(math.max(tonumber(ARGV[i]), 1), limit) end
local granted, taken = 0, 0
for i = 3, #ARGV do
  local c = cost(i)
  if spent + taken + c > limit then break end
  taken = taken + c
  granted = granted + 1
end
if taken > 0 then
  local seq = redis.call('HINCRBY', KEYS[2], 'seq', 1)
  redis.call('ZADD', KEYS[1], now, seq .. ':' .. taken)
  spent = spent + taken
end
local wait = 0
if granted < #ARGV - 2 then
  local needed = spent + cost(granted + 3) - limit
  local freed = 0
  wait = window
  local grants = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
  for i = 1, #grants, 2 do
    freed = freed + units(grants[i])
    if freed >= needed then
      wait = tonumber(grants[i + 1]) + window - now
      break
    end
  end
end
if spent > 0 then
  redis.call('HSET', KEYS[2], 'spent', spent)
  local newest = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
  local expiry = math.ceil((tonumber(newest[2]) + window - now) / 1000) + 1
  redis.call('PEXPIRE', KEYS[1], expiry)
  redis.call('PEXPIRE', KEYS[2], expiry)
else
  redis.call('DEL', KEYS[1], KEYS[2])
end
return {granted, wait}
"""
_TAKE_BUDGET_SHA: Final = hashlib.sha1(
    _TAKE_BUDGET.encode(), usedforsecurity=False
).hexdigest()
# For each key KEYS[i], in order, ARGV holds: its cap, its ttl ('' for no
# expiry change), the number n of its values, then the n values.  Each list
# gets LPUSH (value by value: no unpack() limit), LTRIM to its cap, EXPIRE.
# Every key is checked first, so a key of another type pushes nothing.
_PUSH_CAPPED: Final = """\
for _, key in ipairs(KEYS) do
  local kind = redis.call('TYPE', key)['ok']
  if kind ~= 'none' and kind ~= 'list' then
    return redis.error_reply('WRONGTYPE not a list: ' .. key)
  end
end
local at = 1
for _, key in ipairs(KEYS) do
  local cap, ttl, n = tonumber(ARGV[at]), ARGV[at + 1], tonumber(ARGV[at + 2])
  at = at + 3
  for j = at, at + n - 1 do
    redis.call('LPUSH', key, ARGV[j])
  end
  at = at + n
  if n > 0 then
    redis.call('LTRIM', key, 0, cap - 1)
  end
  if ttl ~= '' then
    redis.call('EXPIRE', key, ttl)
  end
end
return 1
"""
_PUSH_CAPPED_SHA: Final = hashlib.sha1(
    _PUSH_CAPPED.encode(), usedforsecurity=False
).hexdigest()
#: Values sent per script call, at most (one call per batch up to this).
_PUSH_CHUNK: Final = 2000

# The client's reply timeout (``timeout``) fires first: it is the one that
# drops a connection that stopped answering.  Ours, later, covers a call still
# waiting for a connection.
_GRACE = 1.0

_Arg = str | int


class RedisBackend:
    """Redis with the semantics of :class:`~junebug.stores.memory.MemoryBackend`.

    Build it with :func:`connect_redis` (connected) or :func:`redis_backend`
    (dialled later).  ``key_prefix`` (if not empty) is joined to every key
    with ``:``.
    """

    def __init__(
        self,
        client: RespClient,
        *,
        clock: IReactorTime,
        key_prefix: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        self._client = client
        self._clock = clock
        self._prefix = f"{key_prefix}:" if key_prefix else ""
        self._timeout = timeout
        self._closed = False

    def _key(self, key: str) -> str:
        return self._prefix + key

    def is_connected(self) -> bool:
        """True while the connection is up and past its handshake."""
        return not self._closed and self._client.is_connected()

    @property
    def address(self) -> str:
        """Where the Redis server is, for messages (``host:port``...)."""
        return self._client.address

    async def connect(self) -> None:
        """Dial Redis, retrying refused connections until one is set up.

        Raises :class:`~junebug.errors.StoreUnavailable` if Redis refuses the
        credentials or the database; cancel the wait to give up sooner.
        """
        try:
            await self._client.start()
        except RedisSetupError as e:
            raise StoreUnavailable(f"Redis at {self.address}: {e}") from e

    async def _command(self, *args: _Arg) -> object:
        """Run one command, translating the client's errors into ours."""
        if self._closed:
            raise StoreUnavailable(f"Redis {args[0]}: the backend is closed")
        client = self._client
        try:
            if client.is_connected():
                # The reply timeout of the connection bounds the wait.
                reply = await client.execute(*args)
            else:
                deadline = self._timeout + _GRACE
                waiting = client.execute(*args)
                waiting.addTimeout(deadline, self._clock)
                try:
                    reply = await waiting
                except defer.TimeoutError as e:
                    raise StoreUnavailable(
                        f"Redis {args[0]}: timed out after {deadline:g}s"
                    ) from e
        except RedisConnectionError as e:
            raise StoreUnavailable(f"Redis {args[0]}: {e}") from e
        if isinstance(reply, RedisReplyError):
            raise _translate(str(args[0]), reply)
        return reply

    async def _script(
        self, source: str, sha: str, keys: Sequence[str], *args: _Arg
    ) -> object:
        """Run a Lua script by its SHA1, sending it whole only if Redis lost it."""
        arguments = (len(keys), *keys, *args)
        try:
            return await self._command("EVALSHA", sha, *arguments)
        except _NoScript:
            return await self._command("EVAL", source, *arguments)

    async def _with_expiry(
        self, ttl: int, command: str, key: str, *args: _Arg
    ) -> object:
        return await self._script(
            _WITH_EXPIRY, _WITH_EXPIRY_SHA, [self._key(key)], ttl, command, *args
        )

    async def ping(self) -> bool:
        try:
            reply = await self._command("PING")
        except StoreUnavailable:
            return False
        return reply == "PONG"

    async def get(self, key: str, ttl: int | None = None) -> str | None:
        if ttl is None:
            reply = await self._command("GET", self._key(key))
        else:
            reply = await self._with_expiry(ttl, "GET", key)
        return _optional_text(reply)

    async def set(self, key: str, value: str, ttl: int | None = None) -> None:
        if ttl is None:
            await self._command("SET", self._key(key), value)
        else:
            await self._command("SET", self._key(key), value, "EX", ttl)

    async def delete(self, *keys: str) -> None:
        if keys:
            await self._command("DEL", *(self._key(key) for key in keys))

    async def exists(self, key: str) -> bool:
        return _integer(await self._command("EXISTS", self._key(key))) > 0

    async def sadd(self, key: str, *members: str) -> None:
        if members:
            await self._command("SADD", self._key(key), *members)

    async def srem(self, key: str, *members: str) -> None:
        if members:
            await self._command("SREM", self._key(key), *members)

    async def smembers(self, key: str) -> builtins.set[str]:
        reply = await self._command("SMEMBERS", self._key(key))
        return {_text(member) for member in _array(reply)}

    async def hset(
        self, key: str, mapping: dict[str, str], ttl: int | None = None
    ) -> None:
        pairs = [item for field, value in mapping.items() for item in (field, value)]
        if not pairs:
            # HSET needs a field; an empty write only refreshes the expiry
            if ttl is not None:
                await self._command("EXPIRE", self._key(key), ttl)
        elif ttl is None:
            await self._command("HSET", self._key(key), *pairs)
        else:
            await self._with_expiry(ttl, "HSET", key, *pairs)

    async def hget(self, key: str, field: str, ttl: int | None = None) -> str | None:
        if ttl is None:
            reply = await self._command("HGET", self._key(key), field)
        else:
            reply = await self._with_expiry(ttl, "HGET", key, field)
        return _optional_text(reply)

    async def hgetall(self, key: str, ttl: int | None = None) -> dict[str, str]:
        if ttl is None:
            reply = await self._command("HGETALL", self._key(key))
        else:
            reply = await self._with_expiry(ttl, "HGETALL", key)
        flat = [_text(item) for item in _array(reply)]
        return dict(zip(flat[::2], flat[1::2], strict=True))

    async def hset_then_get(
        self, key: str, mapping: dict[str, str], field: str, ttl: int
    ) -> str | None:
        if not mapping:
            raise ValueError("hset_then_get needs a field to set")
        pairs = [item for name, value in mapping.items() for item in (name, value)]
        reply = await self._script(
            _HSET_THEN_GET,
            _HSET_THEN_GET_SHA,
            [self._key(key)],
            ttl,
            field,
            *pairs,
        )
        return _optional_text(reply)

    async def hsetnx(
        self, key: str, field: str, value: str, ttl: int | None = None
    ) -> bool:
        if ttl is None:
            reply = await self._command("HSETNX", self._key(key), field, value)
        else:
            reply = await self._with_expiry(ttl, "HSETNX", key, field, value)
        return _integer(reply) == 1

    async def hdel(self, key: str, *fields: str) -> None:
        if fields:
            await self._command("HDEL", self._key(key), *fields)

    async def incr(self, key: str, ttl: int | None = None, amount: int = 1) -> int:
        if ttl is None:
            reply = await self._command("INCRBY", self._key(key), amount)
        else:
            reply = await self._with_expiry(ttl, "INCRBY", key, amount)
        return _integer(reply)

    async def push_capped(
        self, key: str, values: Sequence[str], cap: int, ttl: int | None = None
    ) -> None:
        await self.push_capped_many([CappedPush(key, values, cap, ttl)])

    async def push_capped_many(self, pushes: Sequence[CappedPush]) -> None:
        keys: list[str] = []
        arguments: list[_Arg] = []
        for push in pushes:
            if push.cap < 1:
                raise ValueError(f"cap must be positive, not {push.cap}")
            # Only the newest ``cap`` can survive the trim.
            kept = push.values[-push.cap :]
            expiry = "" if push.ttl is None else push.ttl
            if keys and len(arguments) + len(kept) > _PUSH_CHUNK:
                await self._push(keys, arguments)
                keys, arguments = [], []
            keys.append(self._key(push.key))
            arguments += [push.cap, expiry, len(kept), *kept]
        if keys:
            await self._push(keys, arguments)

    async def _push(self, keys: list[str], arguments: list[_Arg]) -> None:
        await self._script(_PUSH_CAPPED, _PUSH_CAPPED_SHA, keys, *arguments)

    async def lrange(self, key: str, start: int, stop: int) -> list[str]:
        reply = await self._command("LRANGE", self._key(key), start, stop)
        return [_text(item) for item in _array(reply)]

    async def ttl(self, key: str) -> int | None:
        seconds = _integer(await self._command("TTL", self._key(key)))
        # -2: no such key, -1: no expiry
        return seconds if seconds >= 0 else None

    async def mget(self, *keys: str) -> list[str | None]:
        if not keys:
            return []
        reply = await self._command("MGET", *(self._key(key) for key in keys))
        return [_optional_text(value) for value in _array(reply)]

    async def set_if_absent(self, key: str, value: str, ttl_ms: int) -> bool:
        reply = await self._command("SET", self._key(key), value, "NX", "PX", ttl_ms)
        return reply is not None

    async def expire_if_equal_many(
        self, pairs: Sequence[tuple[str, str]], ttl_ms: int
    ) -> list[bool]:
        if not pairs:
            return []
        reply = await self._script(
            _EXPIRE_IF_EQUAL,
            _sha(_EXPIRE_IF_EQUAL),
            [self._key(key) for key, _ in pairs],
            ttl_ms,
            *(value for _, value in pairs),
        )
        if not isinstance(reply, list) or len(reply) != len(pairs):
            raise StoreUnavailable(f"Redis EVALSHA: unexpected reply {reply!r}")
        return [_integer(done) == 1 for done in reply]

    async def delete_if_equal(self, key: str, value: str) -> bool:
        reply = await self._script(
            _DELETE_IF_EQUAL, _sha(_DELETE_IF_EQUAL), [self._key(key)], value
        )
        return _integer(reply) == 1

    async def take_budget(
        self, key: str, costs: Sequence[int], limit: int, window: float
    ) -> BudgetGrant:
        log = self._key(key)
        reply = await self._script(
            _TAKE_BUDGET,
            _TAKE_BUDGET_SHA,
            [log, f"{log}:spent"],
            max(1, round(window * 1_000_000)),
            limit,
            *costs,
        )
        granted, wait = (_integer(item) for item in _array(reply))
        return BudgetGrant(granted, wait / 1_000_000)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._client.close()


def redis_backend(
    address: RedisAddress,
    key_prefix: str | None = None,
    *,
    clock: IReactorTime,
    reactor: TimeTCPReactor | None = None,
    connect_timeout: float = 10.0,
    timeout: float = 10.0,
) -> RedisBackend:
    """A backend for the Redis at ``address`` that has not dialled yet.

    :meth:`RedisBackend.connect` dials; commands issued before then wait for
    the connection (each at most ``timeout`` seconds).  See
    :func:`connect_redis` for the arguments.  Raises
    :class:`~junebug.errors.StoreUnavailable` for an unusable address (a CA
    file that cannot be read).
    """
    try:
        client = RespClient(
            # Without a reactor, the docstring's contract: the clock is one.
            cast("TimeTCPReactor", clock) if reactor is None else reactor,
            clock,
            address,
            timeout=timeout,
            connect_timeout=connect_timeout,
        )
    except ValueError as e:
        raise StoreUnavailable(f"Redis at {address.describe()}: {e}") from e
    return RedisBackend(client, clock=clock, key_prefix=key_prefix, timeout=timeout)


async def connect_redis(
    host: str = "localhost",
    port: int = 6379,
    db: int = 0,
    password: str | None = None,
    key_prefix: str | None = None,
    *,
    clock: IReactorTime,
    reactor: TimeTCPReactor | None = None,
    connect_timeout: float = 10.0,
    timeout: float = 10.0,
    username: str | None = None,
    address: RedisAddress | None = None,
) -> RedisBackend:
    """Connect to Redis and return the backend once the connection is usable.

    The server is ``address`` if given (TLS, unix sockets: see
    :class:`~junebug.stores.redis_address.RedisAddress`), otherwise plain TCP
    to ``host``:``port`` with ``db``, ``username`` and ``password``.
    ``reactor`` dials (default: ``clock``, which must then be a reactor);
    ``clock`` drives the timeouts.  Raises
    :class:`~junebug.errors.StoreUnavailable` if Redis is not reachable within
    ``connect_timeout`` seconds, refuses the credentials or ``db``, or the CA
    file cannot be read; nothing is left running then.  ``timeout`` bounds
    every later call (see the module's docstring).
    """
    if address is None:
        address = RedisAddress(
            host=host, port=port, db=db, username=username, password=password
        )
    backend = redis_backend(
        address,
        key_prefix,
        clock=clock,
        reactor=reactor,
        connect_timeout=connect_timeout,
        timeout=timeout,
    )
    starting = defer.Deferred.fromCoroutine(backend.connect())
    starting.addTimeout(connect_timeout, clock)
    try:
        await starting
    except defer.TimeoutError as e:
        await backend.close()
        raise StoreUnavailable(
            f"Redis at {address.describe()} not reachable within {connect_timeout:g}s"
        ) from e
    except StoreUnavailable:
        await backend.close()
        raise
    return backend


_NOT_READY: Final = ("LOADING", "BUSY", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN")


class _NoScript(Exception):
    """Redis does not have the script an ``EVALSHA`` named."""


def _translate(command: str, error: RedisReplyError) -> Exception:
    message = str(error)
    if message.startswith("NOSCRIPT"):
        return _NoScript(message)
    if message.startswith(_NOT_READY):
        # Redis is up but cannot serve yet (loading its data after a restart,
        # a replica without its master): as unavailable as a closed port.
        return StoreUnavailable(f"Redis {command}: {message}")
    if "WRONGTYPE" in message:
        return TypeError(f"Redis {command}: the key holds another type")
    if "not an integer" in message:
        return ValueError(f"Redis {command}: the value is not an integer")
    return error


def _text(reply: object) -> str:
    if isinstance(reply, str):
        return reply
    if isinstance(reply, bytes):
        # the client hands back bytes it could not decode as UTF-8
        return reply.decode("utf-8", "replace")
    raise RuntimeError(f"unexpected Redis reply {reply!r}")


def _optional_text(reply: object) -> str | None:
    return None if reply is None else _text(reply)


def _integer(reply: object) -> int:
    if isinstance(reply, int) and not isinstance(reply, bool):
        return reply
    raise RuntimeError(f"unexpected Redis reply {reply!r}")


def _array(reply: object) -> Iterable[object]:
    if isinstance(reply, list | set | tuple):
        return reply
    raise RuntimeError(f"unexpected Redis reply {reply!r}")
