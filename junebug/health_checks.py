"""The checks behind ``/health`` and ``/health/ready``: each is an argument-less
coroutine function answering None (fine) or a problem (an error entry with
``type`` and ``message``, or a list of them)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from junebug.amqp.broker import Broker
from junebug.api.readiness import Readiness
from junebug.channels.registry import ChannelRegistry
from junebug.plugins.host import PluginHost
from junebug.stores.backend import KeyValueBackend
from junebug.stores.redis import RedisBackend

Check = Callable[[], Awaitable[Any]]


def broker_check(broker: Broker) -> Check:
    """RabbitMQ is connected and does not block publishing."""

    async def broker_connected() -> dict[str, str] | None:
        if not broker.is_connected():
            return {
                "type": "AmqpConnectionError",
                "message": "Not connected to RabbitMQ",
            }
        blocked = broker.blocked_reason()
        if blocked is not None:
            return {
                "type": "AmqpBlocked",
                "message": f"RabbitMQ blocks publishing: {blocked}",
            }
        return None

    return broker_connected


def store_check(backend: KeyValueBackend) -> Check:
    """The store (Redis) is connected and answers a ping."""

    async def store_answers() -> dict[str, str] | None:
        if isinstance(backend, RedisBackend) and not backend.is_connected():
            return {
                "type": "StoreUnavailable",
                "message": f"Not connected to Redis at {backend.address}",
            }
        try:
            if await backend.ping():
                return None
        except Exception as exc:
            return {"type": "StoreUnavailable", "message": str(exc)}
        return {"type": "StoreUnavailable", "message": "Redis does not answer"}

    return store_answers


def started_check(readiness: Readiness | None) -> Check:
    """Junebug has started and is not stopping."""

    async def started() -> dict[str, str] | None:
        return None if readiness is None else readiness.problem()

    return started


def channels_placed_check(
    channels: ChannelRegistry, readiness: Readiness, backend: KeyValueBackend
) -> Check:
    """Every stored channel has started here, or its start failed (and that
    failure is recorded).  Asked only once started and while Redis is
    connected: otherwise the other checks already say what is missing, and
    the store would keep the probe waiting."""

    async def channels_placed() -> dict[str, str] | None:
        if readiness.problem() is not None:
            return None
        if isinstance(backend, RedisBackend) and not backend.is_connected():
            return None
        try:
            unplaced = await channels.unplaced_ids()
        except Exception as exc:
            return {
                "type": "ChannelsNotPlaced",
                "message": f"cannot list the stored channels: {exc}",
            }
        if not unplaced:
            return None
        return {
            "type": "ChannelsNotPlaced",
            "message": "stored channels not started: " + ", ".join(unplaced),
        }

    return channels_placed


def connection_checks(
    backend: KeyValueBackend,
    broker: Broker,
    readiness: Readiness | None = None,
    plugins: PluginHost | None = None,
) -> list[Check]:
    """The checks ``/health`` runs."""

    async def plugins_healthy() -> list[dict[str, str]]:
        return [] if plugins is None else plugins.problems()

    return [
        broker_check(broker),
        store_check(backend),
        started_check(readiness),
        plugins_healthy,
    ]


def ready_checks(
    backend: KeyValueBackend,
    broker: Broker,
    readiness: Readiness,
    channels: ChannelRegistry,
) -> list[Check]:
    """The checks ``/health/ready`` runs: backends reachable, started,
    channels placed."""
    return [
        broker_check(broker),
        store_check(backend),
        started_check(readiness),
        channels_placed_check(channels, readiness, backend),
    ]
