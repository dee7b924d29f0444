"""Whether the delivery a handler works on is still the broker's to settle.

A consumer runs each handler under a :class:`DeliveryLease`.  When the
delivery dies (its channel or connection is gone, so the broker will deliver
the message again, perhaps to another consumer), the consumer marks the
lease lost.  Work that retries on its own, like an SMPP part waiting out a
throttle, calls :func:`check_delivery` before each new attempt and so stops
instead of sending a copy the broker already handed out again.

The lease travels in a context variable: a handler needs no extra argument
and the Deferreds it starts with ``ensureDeferred`` see the same lease.
Outside a consumer (a drain, a test) there is no lease and nothing is lost.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextvars import ContextVar, copy_context
from typing import TypeVar

from twisted.internet.defer import Deferred, ensureDeferred

from junebug.errors import DeliveryLost

__all__ = ["DeliveryLease", "check_delivery", "current_lease", "run_leased"]

T = TypeVar("T")
A = TypeVar("A")


class DeliveryLease:
    """One delivery a handler is working on."""

    __slots__ = ("lost",)

    def __init__(self) -> None:
        self.lost = False

    def lose(self) -> None:
        """The delivery died: the broker redelivers the message."""
        self.lost = True


_current: ContextVar[DeliveryLease | None] = ContextVar(
    "junebug_delivery_lease", default=None
)


def current_lease() -> DeliveryLease | None:
    """The lease of the delivery being handled, if any."""
    return _current.get()


def check_delivery() -> None:
    """Raise :class:`~junebug.errors.DeliveryLost` if the delivery being
    handled died; call before repeating work that must not happen twice."""
    lease = _current.get()
    if lease is not None and lease.lost:
        raise DeliveryLost("the broker will deliver this message again")


def run_leased(
    lease: DeliveryLease, handler: Callable[[A], Awaitable[T]], argument: A
) -> Deferred[T]:
    """Run ``handler(argument)`` in a context of its own whose current lease
    is ``lease`` (the caller's context is left as it was)."""

    async def call() -> T:
        return await handler(argument)

    context = copy_context()
    context.run(_current.set, lease)
    return context.run(ensureDeferred, call())
