"""Where the message API keeps what it must remember between requests.

Two things: inbound messages (so a send with ``reply_to`` can be built as a
reply) and the ``event_url``/``event_auth_token`` of each message sent (so its
events reach the right place).  Both live in a
:class:`~junebug.stores.messages.MessageStore` keyed by the connector name, the
very store channels use, over one of two backends:

- ``memory`` (the default): in this process, at most ``max_size`` messages,
  the least recently used dropped first, each for ``timeout`` seconds;
- ``redis``: shared and persistent, each key expiring after ``timeout`` seconds.

``state_cache_class`` may also name any class (dotted path) with a
``CONFIG_CLASS`` (an attrs class its ``state_cache_config`` is structured into)
and an ``async open(reactor, config)`` classmethod returning an object with a
``store`` (a MessageStore) and an ``async close()``.
"""

from __future__ import annotations

import importlib
from collections import OrderedDict
from typing import Any, ClassVar, Protocol

import attrs
from twisted.internet.interfaces import IReactorTime

from junebug.converter import structure
from junebug.errors import ConfigError
from junebug.stores.memory import MemoryBackend
from junebug.stores.messages import MessageStore
from junebug.stores.redis import RedisBackend, connect_redis
from junebug.stores.redis_address import address_of, redis_url_validator
from junebug.tls import ca_file_validator

__all__ = [
    "BoundedMemoryBackend",
    "MemoryStateCache",
    "RedisStateCache",
    "StateCache",
    "open_state_cache",
    "resolve_state_cache",
    "validate_state_cache",
]

#: One day, vumi2's default.
DEFAULT_TIMEOUT = 86_400


class StateCache(Protocol):
    """An opened state cache."""

    store: MessageStore

    async def close(self) -> None:
        """Release what the cache holds (connections)."""


def _positive(_inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value <= 0:
        raise ValueError(f"{attribute.name} must be greater than 0")


class BoundedMemoryBackend(MemoryBackend):
    """A :class:`MemoryBackend` holding at most ``max_keys`` hashes.

    Every hash read or write marks its key as recently used; a write that
    makes more than ``max_keys`` keys evicts the least recently used ones.
    (The message store only uses hashes, so only they are counted.)
    """

    def __init__(
        self, clock: IReactorTime, max_keys: int, key_prefix: str | None = None
    ) -> None:
        super().__init__(clock, key_prefix)
        self.max_keys = max_keys
        self._recent: OrderedDict[str, None] = OrderedDict()

    def __len__(self) -> int:
        return len(self._recent)

    def _used(self, key: str) -> None:
        self._recent[key] = None
        self._recent.move_to_end(key)

    async def _evict(self) -> None:
        while len(self._recent) > self.max_keys:
            oldest, _ = self._recent.popitem(last=False)
            await super().delete(oldest)

    async def hset(
        self, key: str, mapping: dict[str, str], ttl: int | None = None
    ) -> None:
        await super().hset(key, mapping, ttl)
        if await super().exists(key):
            self._used(key)
            await self._evict()

    async def hget(self, key: str, field: str, ttl: int | None = None) -> str | None:
        value = await super().hget(key, field, ttl)
        await self._note(key)
        return value

    async def hgetall(self, key: str, ttl: int | None = None) -> dict[str, str]:
        value = await super().hgetall(key, ttl)
        await self._note(key)
        return value

    async def _note(self, key: str) -> None:
        if await super().exists(key):
            self._used(key)
        else:  # expired (or never there): forget it
            self._recent.pop(key, None)

    async def delete(self, *keys: str) -> None:
        await super().delete(*keys)
        for key in keys:
            self._recent.pop(key, None)


@attrs.frozen
class MemoryStateCacheConfig:
    """``state_cache_config`` of the ``memory`` state cache."""

    timeout: int = attrs.field(
        default=DEFAULT_TIMEOUT,
        validator=_positive,
        metadata={"doc": "Seconds an inbound message or event URL is kept"},
    )
    max_size: int = attrs.field(
        default=100_000,
        validator=_positive,
        metadata={"doc": "Most messages kept; the least recently used go first"},
    )


@attrs.define
class MemoryStateCache:
    """State in this process's memory, bounded in size; lost on restart."""

    CONFIG_CLASS: ClassVar[type[Any]] = MemoryStateCacheConfig

    store: MessageStore
    backend: BoundedMemoryBackend

    @classmethod
    async def open(
        cls, reactor: IReactorTime, config: MemoryStateCacheConfig
    ) -> MemoryStateCache:
        backend = BoundedMemoryBackend(reactor, config.max_size)
        return cls(MessageStore(backend, config.timeout, config.timeout), backend)

    async def close(self) -> None:
        await self.backend.close()


@attrs.frozen
class RedisStateCacheConfig:
    """``state_cache_config`` of the ``redis`` state cache."""

    host: str = attrs.field(default="localhost", metadata={"doc": "Redis host"})
    port: int = attrs.field(default=6379, metadata={"doc": "Redis port"})
    db: int = attrs.field(default=0, metadata={"doc": "Redis database number"})
    password: str | None = attrs.field(default=None, metadata={"doc": "Redis password"})
    key_prefix: str | None = attrs.field(
        default=None, metadata={"doc": "Prefix (joined with ':') for every key"}
    )
    username: str | None = attrs.field(
        default=None, metadata={"doc": "Redis ACL user (Redis 6+); with password"}
    )
    tls: bool = attrs.field(
        default=False, metadata={"doc": "Connect with TLS, verifying the certificate"}
    )
    ca_file: str | None = attrs.field(
        default=None,
        validator=ca_file_validator,
        metadata={"doc": "PEM CA bundle for Redis TLS; the platform's CAs if unset"},
    )
    url: str | None = attrs.field(
        default=None,
        validator=redis_url_validator,
        metadata={
            "doc": "redis://, rediss:// (TLS) or unix:// URL; replaces host, port, "
            "db, username, password and tls"
        },
    )
    timeout: int = attrs.field(
        default=DEFAULT_TIMEOUT,
        validator=_positive,
        metadata={"doc": "Seconds an inbound message or event URL is kept"},
    )


@attrs.define
class RedisStateCache:
    """State in Redis: shared by every instance, kept across restarts.

    Keys are Junebug's: ``<connector>:inbound_messages:<id>`` and
    ``<connector>:outbound_messages:<id>`` (after ``key_prefix``).
    """

    CONFIG_CLASS: ClassVar[type[Any]] = RedisStateCacheConfig

    store: MessageStore
    backend: RedisBackend

    @classmethod
    async def open(
        cls, reactor: IReactorTime, config: RedisStateCacheConfig
    ) -> RedisStateCache:
        backend = await connect_redis(
            key_prefix=config.key_prefix, address=address_of(config), clock=reactor
        )
        return cls(MessageStore(backend, config.timeout, config.timeout), backend)

    async def close(self) -> None:
        await self.backend.close()


_SHORT_NAMES: dict[str, type[Any]] = {
    "memory": MemoryStateCache,
    "redis": RedisStateCache,
}
#: vumi2's names for its caches, so its config files work unchanged.
_ALIASES = {
    "vumi2.applications.junebug_message_api.junebug_state_cache."
    "MemoryJunebugStateCache": "memory",
}


def resolve_state_cache(name: str) -> type[Any]:
    """The state cache class ``state_cache_class`` names."""
    name = _ALIASES.get(name, name)
    if name in _SHORT_NAMES:
        return _SHORT_NAMES[name]
    module_name, dot, class_name = name.rpartition(".")
    if not dot or not module_name:
        raise ConfigError(
            f"state_cache_class: expected 'memory', 'redis' or a dotted class "
            f"path, got {name!r}"
        )
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"state_cache_class: cannot load {name!r}: {exc}") from exc
    config_class = getattr(cls, "CONFIG_CLASS", None)
    if not (
        isinstance(cls, type)
        and isinstance(config_class, type)
        and attrs.has(config_class)
        and callable(getattr(cls, "open", None))
    ):
        raise ConfigError(
            f"state_cache_class: {name!r} is not a state cache (it needs a "
            f"CONFIG_CLASS and an open() classmethod)"
        )
    return cls


def validate_state_cache(name: str, config: dict[str, Any]) -> Any:
    """Resolve the class and structure its config; ConfigError if either fails."""
    cls = resolve_state_cache(name)
    return structure(
        config, cls.CONFIG_CLASS, path="state_cache_config", forbid_extra_keys=True
    )


async def open_state_cache(
    reactor: IReactorTime, name: str, config: dict[str, Any]
) -> StateCache:
    """Open the state cache a config names."""
    cls = resolve_state_cache(name)
    typed = validate_state_cache(name, config)
    cache: StateCache = await cls.open(reactor, typed)
    return cache
