"""Deferred helpers of the RabbitMQ broker: deadlines and quiet teardown."""

from __future__ import annotations

from typing import Any, TypeVar

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from junebug.errors import BrokerError

__all__ = ["bounded", "chain_to", "describe", "quiet"]

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
