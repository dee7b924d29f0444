"""Deferred helpers of the brokers: deadlines, quiet teardown, and waiters
released together."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from junebug.errors import BrokerError

__all__ = ["RunningHandlers", "Waiters", "bounded", "chain_to", "describe", "quiet"]

T = TypeVar("T")

_log = Logger(namespace="junebug.amqp.rabbitmq")


def bounded(
    reactor: IReactorTime, d: Deferred[T], seconds: float, what: str
) -> Deferred[T]:
    """Fire like ``d`` but fail with :class:`BrokerError` after ``seconds``.

    ``d`` itself is left alone (a round trip already written cannot be taken
    back); whatever it fires with later is swallowed.
    """
    result: Deferred[T] = Deferred()

    def expire() -> None:
        if not result.called:
            result.errback(BrokerError(f"{what} timed out after {seconds:g}s"))

    call = reactor.callLater(seconds, expire)

    def ok(value: T) -> None:
        if call.active():
            call.cancel()
        if not result.called:
            result.callback(value)

    def err(failure: Failure) -> None:
        if call.active():
            call.cancel()
        if not result.called:
            result.errback(failure)

    d.addCallbacks(ok, err)
    return result


def describe(error: BaseException | None) -> str:
    """``"ErrorClass: text"`` for logs and error messages."""
    if error is None:
        return "unknown error"
    text = str(error)
    name = type(error).__name__
    return f"{name}: {text}" if text else name


def chain_to(result: object, d: Deferred[None]) -> object:
    """Fire ``d`` like ``result`` (a callback for one shared Deferred)."""
    if isinstance(result, Failure):
        d.errback(result)
        return None
    d.callback(None)
    return result


async def quiet(d: Deferred[Any]) -> None:
    """Await ``d`` and ignore its failure (used while tearing down)."""
    try:
        await d
    except Exception as e:
        _log.debug("ignored while stopping: {error}", error=describe(e))


class Waiters:
    """Callers waiting for one thing to happen, released all at once by
    :meth:`release` or :meth:`fail`; each may give up after its own timeout."""

    def __init__(self) -> None:
        self._waiting: list[Deferred[None]] = []

    def __bool__(self) -> bool:
        return bool(self._waiting)

    async def wait(
        self,
        clock: IReactorTime | None = None,
        timeout: float | None = None,
        timed_out: Callable[[float], Exception] | None = None,
    ) -> None:
        """Return at the next :meth:`release`; with a ``timeout`` (on
        ``clock``), raise ``timed_out(timeout)`` once it has passed."""
        waiter: Deferred[None] = Deferred()
        self._waiting.append(waiter)
        if timeout is not None and clock is not None and timed_out is not None:
            call = clock.callLater(timeout, self._expire, waiter, timed_out(timeout))
            waiter.addBoth(_cancel_call, call)
        await waiter

    def release(self) -> None:
        """Let every current waiter return."""
        waiting, self._waiting = self._waiting, []
        for waiter in waiting:
            waiter.callback(None)

    def fail(self, error: Exception) -> None:
        """Make every current waiter raise ``error``."""
        waiting, self._waiting = self._waiting, []
        for waiter in waiting:
            waiter.errback(error)

    def _expire(self, waiter: Deferred[None], error: Exception) -> None:
        if waiter in self._waiting:
            self._waiting.remove(waiter)
        if not waiter.called:
            waiter.errback(error)


class RunningHandlers:
    """How many of a consumer's handlers are running; :meth:`idle` waits
    until none is."""

    def __init__(self) -> None:
        self.count = 0
        self._idle = Waiters()

    def started(self) -> None:
        self.count += 1

    def finished(self) -> None:
        self.count -= 1
        if self.count == 0:
            self._idle.release()

    async def idle(self) -> None:
        """Return once no handler is running."""
        while self.count:
            await self._idle.wait()


def _cancel_call(result: object, call: IDelayedCall) -> object:
    if call.active():
        call.cancel()
    return result
