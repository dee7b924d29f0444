"""Changing channels and routers while a backend may be away.

Both registries refuse a change at once while the message broker is not
connected (nothing is changed: the client may retry), and undo a change that
a backend failed half-way, step by step, never letting a failed undo step
hide the error that caused it.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from twisted.logger import Logger

from junebug.amqp.broker import Broker
from junebug.errors import AmqpConnectionError


def require_broker(broker: Broker, what: str) -> None:
    """Raise :class:`AmqpConnectionError` (503) unless ``broker`` is connected."""
    if not broker.is_connected():
        raise AmqpConnectionError(
            f"{what}: not connected to the message broker; nothing was changed"
        )


async def undo_quietly(log: Logger, what: str, step: Awaitable[Any]) -> None:
    """Await ``step`` of an undo; log (never raise) if it fails."""
    try:
        await step
    except Exception as exc:
        log.warn("Could not {what}: {error}", what=what, error=exc)
