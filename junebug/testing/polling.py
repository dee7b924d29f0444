"""Await a condition without sleeping blindly: poll it on the reactor, bounded."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from twisted.internet import task
from twisted.internet.interfaces import IReactorTime


async def wait_until(
    condition: Callable[[], Any],
    timeout: float = 10.0,
    interval: float = 0.01,
    clock: IReactorTime | None = None,
) -> Any:
    """Return the first truthy value of ``condition()``, or raise TimeoutError."""
    if clock is None:
        from twisted.internet import reactor

        clock = reactor
    waited = 0.0
    while True:
        value = condition()
        if value:
            return value
        if waited >= timeout:
            raise TimeoutError(f"condition not met within {timeout}s")
        await task.deferLater(clock, interval, lambda: None)
        waited += interval


async def poll_until(
    condition: Callable[[], Awaitable[Any]],
    timeout: float = 20.0,
    interval: float = 0.02,
    clock: IReactorTime | None = None,
) -> Any:
    """Like :func:`wait_until` for a condition that must be awaited (an HTTP
    request, say): its first truthy value, or TimeoutError."""
    if clock is None:
        from twisted.internet import reactor

        clock = reactor
    waited = 0.0
    while True:
        value = await condition()
        if value:
            return value
        if waited >= timeout:
            raise TimeoutError(f"condition not met within {timeout}s")
        await task.deferLater(clock, interval, lambda: None)
        waited += interval
