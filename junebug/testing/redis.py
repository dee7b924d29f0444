"""Tests against the real Redis: a unique key prefix per test, cleaned up after.

The server is ``JUNEBUG_TEST_REDIS_URL`` (default ``redis://127.0.0.1:6379/0``).
An unreachable server fails the test that asked for it; nothing is skipped.

Usage from a ``twisted.trial.unittest.TestCase``::

    self.redis = await start_redis_fixture(self, reactor)
    backend = await self.redis.backend()

Every key the test writes through those backends starts with
``self.redis.prefix + ":"``; at cleanup the backends are closed, those keys are
deleted and the fixture's own connection is closed.
"""

from __future__ import annotations

import os
import uuid
from typing import Any
from urllib.parse import unquote, urlsplit

import attrs
import txredisapi
from twisted.internet.interfaces import IReactorTime
from twisted.trial.unittest import SynchronousTestCase

from junebug.reactors import TimeTCPReactor
from junebug.stores.redis import RedisBackend, connect_redis

DEFAULT_TEST_REDIS_URL = "redis://127.0.0.1:6379/0"
CONNECT_TIMEOUT = 5.0


@attrs.frozen
class RedisAddress:
    host: str
    port: int
    db: int
    password: str | None

    @classmethod
    def from_url(cls, url: str) -> RedisAddress:
        """Parse ``redis://[:password@]host[:port][/db]``."""
        parts = urlsplit(url)
        if parts.scheme != "redis":
            raise ValueError(f"not a redis:// URL: {url!r}")
        db = parts.path.strip("/")
        return cls(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 6379,
            db=int(db) if db else 0,
            password=unquote(parts.password) if parts.password else None,
        )


def redis_test_address() -> RedisAddress:
    """The Redis the tests use."""
    return RedisAddress.from_url(
        os.environ.get("JUNEBUG_TEST_REDIS_URL") or DEFAULT_TEST_REDIS_URL
    )


def _glob_escape(text: str) -> str:
    return "".join(f"\\{char}" if char in "*?[]\\^" else char for char in text)


class RedisFixture:
    """Backends under one unique prefix, and a raw connection to inspect them.

    The raw connection is a plain txredisapi one, independent of
    :class:`RedisBackend`, so tests can check what really is in Redis.
    """

    def __init__(
        self, clock: TimeTCPReactor, address: RedisAddress, admin: Any
    ) -> None:
        self.clock = clock
        self.address = address
        self.prefix = f"junebug-test:{uuid.uuid4().hex}"
        self._admin = admin
        self._backends: list[RedisBackend] = []

    async def backend(
        self,
        namespace: str | None = None,
        *,
        clock: IReactorTime | None = None,
        timeout: float = 10.0,
        prefixed: bool = True,
    ) -> RedisBackend:
        """A connected backend whose key prefix is ``prefix[:namespace]``.

        With ``prefixed=False`` the backend has no key prefix at all; keep its
        keys under :attr:`prefix` yourself so cleanup finds them.
        """
        key_prefix: str | None = None
        if prefixed:
            key_prefix = f"{self.prefix}:{namespace}" if namespace else self.prefix
        backend = await connect_redis(
            self.address.host,
            self.address.port,
            self.address.db,
            self.address.password,
            key_prefix,
            clock=clock or self.clock,
            reactor=self.clock,
            connect_timeout=CONNECT_TIMEOUT,
            timeout=timeout,
        )
        self._backends.append(backend)
        return backend

    async def raw(self, *command: str | int) -> object:
        """Run a command on the raw connection; keys are not prefixed."""
        reply: object = await self._admin.execute_command(*command)
        return reply

    async def raw_keys(self) -> set[str]:
        """Every key under :attr:`prefix`, as Redis names it."""
        keys: set[str] = set()
        cursor = "0"
        pattern = _glob_escape(self.prefix) + ":*"
        while True:
            reply = await self.raw("SCAN", cursor, "MATCH", pattern, "COUNT", 500)
            assert isinstance(reply, list)
            cursor, batch = str(reply[0]), reply[1]
            keys.update(str(key) for key in batch)
            if cursor == "0":
                return keys

    async def delete_prefix(self) -> int:
        """Delete every key under :attr:`prefix`; return how many there were."""
        keys = sorted(await self.raw_keys())
        for start in range(0, len(keys), 500):
            await self.raw("DEL", *keys[start : start + 500])
        return len(keys)

    async def close(self) -> None:
        """Close the backends, delete the keys, close the raw connection."""
        try:
            for backend in self._backends:
                await backend.close()
            await self.delete_prefix()
        finally:
            await self._admin.disconnect()


async def start_redis_fixture(
    test: SynchronousTestCase,
    clock: TimeTCPReactor,
    address: RedisAddress | None = None,
) -> RedisFixture:
    """Connect to the test Redis and register the fixture's cleanup on ``test``.

    Fails (never skips) if Redis does not answer.
    """
    address = address or redis_test_address()
    try:
        admin = await txredisapi.Connection(
            address.host,
            address.port,
            dbid=address.db,
            password=address.password,
            reconnect=False,
            connectTimeout=CONNECT_TIMEOUT,
            replyTimeout=CONNECT_TIMEOUT,
            convertNumbers=False,
        )
    except Exception as e:
        raise AssertionError(
            f"the test Redis at {address.host}:{address.port} is not usable "
            f"(set JUNEBUG_TEST_REDIS_URL): {e}"
        ) from e
    fixture = RedisFixture(clock, address, admin)
    test.addCleanup(fixture.close)
    return fixture
