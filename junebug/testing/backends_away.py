"""Make the in-memory backends go away on cue, as Redis and RabbitMQ do.

:class:`StoreSwitch` wraps a key-value backend's commands: while ``away`` each
raises :class:`~junebug.errors.StoreUnavailable` (what the Redis backend
raises when Redis is unreachable); ``fail_after(n)`` lets ``n`` more commands
through, then fails the next one only, to fail an operation half-way.  The
stored logs' list pushes (:data:`BACKGROUND`) are written in batches whenever
the reactor gets round to it, so ``fail_after`` does not count or fail them:
they would take the failure meant for the operation.
:func:`drop_broker_on_consume` disconnects a
:class:`~junebug.amqp.memory.MemoryBroker` when the ``n``-th next consumer is
being set up, so a start fails after earlier steps worked.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any

from junebug.amqp.memory import MemoryBroker
from junebug.errors import StoreUnavailable

COMMANDS = (
    "ping",
    "get",
    "set",
    "delete",
    "exists",
    "sadd",
    "srem",
    "smembers",
    "hset",
    "hget",
    "hgetall",
    "hset_then_get",
    "hdel",
    "incr",
    "ttl",
    "push_capped",
    "push_capped_many",
    "lrange",
)


#: Commands written in the background, not by the operation under test.
BACKGROUND = frozenset({"push_capped", "push_capped_many"})


class StoreSwitch:
    """Turns a backend's commands off and on."""

    def __init__(self, backend: Any) -> None:
        self.away = False
        self._allowed: int | None = None
        #: Commands that failed because of :meth:`fail_after`.
        self.failed = 0
        for name in COMMANDS:
            setattr(backend, name, self._wrap(name, getattr(backend, name)))

    def fail_after(self, commands: int) -> None:
        """Let ``commands`` more commands through, then fail one."""
        self._allowed = commands

    def back(self) -> None:
        self.away = False
        self._allowed = None

    def _wrap(
        self, name: str, command: Callable[..., Awaitable[Any]]
    ) -> Callable[..., Awaitable[Any]]:
        @functools.wraps(command)
        async def switched(*args: Any, **kwargs: Any) -> Any:
            if self._allowed is not None and name not in BACKGROUND:
                if self._allowed == 0:
                    self._allowed = None
                    self.failed += 1
                    raise StoreUnavailable(f"Redis {name.upper()}: Connection lost")
                self._allowed -= 1
            if self.away:
                raise StoreUnavailable(f"Redis {name.upper()}: Connection refused")
            return await command(*args, **kwargs)

        return switched


def drop_broker_on_consume(broker: MemoryBroker, nth: int = 1) -> None:
    """Disconnect ``broker`` as its ``nth`` next consumer is set up (that
    consume then fails with :class:`~junebug.errors.BrokerError`)."""
    consume = broker.consume
    seen = 0

    async def dropping(*args: Any, **kwargs: Any) -> Any:
        nonlocal seen
        seen += 1
        if seen == nth:
            broker.disconnect()
            broker.consume = consume  # type: ignore[method-assign]
        return await consume(*args, **kwargs)

    broker.consume = dropping  # type: ignore[method-assign]
