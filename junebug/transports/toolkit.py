"""What every transport gets from its channel besides publishing.

A :class:`~junebug.transports.interface.TransportContext` carries one of each,
made for the transport it is given to:

- :class:`BackgroundTasks`: work started from synchronous code (a protocol
  callback, a timer, request rendering) that nobody awaits.  A failure is
  logged, never lost; ``stop()`` waits for what is still running with
  :meth:`BackgroundTasks.wait`.
- :class:`StatusReporter`: status events, published in order without making
  the caller wait.  The one de-duplication rule: a status is skipped when its
  level and type are those of its component's previous status (the message
  and details may differ).  A status that could not be published is logged
  and forgotten, so the same status is published when it next occurs.

and two functions for ``stop()`` methods: :func:`wait_all` (wait for several
Deferreds, at most so long) and :func:`observe` (wait for a Deferred without
taking its result or cancelling it).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import Any

from twisted.internet.defer import CancelledError, Deferred, DeferredList
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from junebug.messages import StatusEvent, status_event

__all__ = ["BackgroundTasks", "StatusReporter", "observe", "wait_all"]


def observe(d: Deferred[Any]) -> Deferred[None]:
    """A new Deferred that fires with None when ``d`` fires; ``d`` is untouched.

    Cancelling the observer does not cancel ``d``.
    """
    observer: Deferred[None] = Deferred()

    def fire(result: object) -> object:
        if not observer.called:
            observer.callback(None)
        return result

    d.addBoth(fire)
    return observer


async def wait_all(
    clock: IReactorTime, deferreds: Iterable[Deferred[Any]], timeout: float
) -> bool:
    """Wait until every Deferred has fired, at most ``timeout`` seconds.

    Failures are consumed.  On timeout the Deferreds still pending are
    cancelled (pass :func:`observe` of one to leave it alone) and the result
    is False; otherwise it is True.
    """
    pending = list(deferreds)
    if not pending:
        return True
    waiting: Deferred[Any] = DeferredList(pending, consumeErrors=True)
    timed_out = False

    def give_up() -> None:
        nonlocal timed_out
        timed_out = True
        waiting.cancel()

    timer = clock.callLater(timeout, give_up)
    try:
        await waiting
    except CancelledError:
        return False
    finally:
        if timer.active():
            timer.cancel()
    return not timed_out


class BackgroundTasks:
    """Coroutines started from synchronous code, awaited together on stop."""

    def __init__(self, clock: IReactorTime, log: Logger) -> None:
        self._clock = clock
        self._log = log
        self._running: set[Deferred[None]] = set()

    def __len__(self) -> int:
        return len(self._running)

    def spawn(self, work: Coroutine[Any, Any, None], what: str) -> Deferred[None]:
        """Run ``work``; a failure is logged with ``what``, never raised (a
        task cancelled by :meth:`wait` is not logged).

        The Deferred returned fires (with None) once ``work`` is done.
        """
        d = Deferred.fromCoroutine(work)
        self._running.add(d)

        def failed(failure: Failure) -> None:
            # Cancelled by wait() giving up: its caller says so.
            if not failure.check(CancelledError):
                self._log.failure(
                    "Background task failed: {what}", failure=failure, what=what
                )

        def forget(result: object) -> object:
            self._running.discard(d)
            return result

        d.addErrback(failed)
        d.addBoth(forget)
        return d

    async def wait(self, timeout: float) -> bool:
        """Wait for every running task, at most ``timeout`` s; False on timeout
        (the tasks still running are then cancelled)."""
        return await wait_all(self._clock, list(self._running), timeout)


class StatusReporter:
    """Publishes one transport's status events (see the module doc)."""

    def __init__(
        self,
        channel_id: str,
        publish: Callable[[StatusEvent], Awaitable[None]],
        log: Logger,
        tasks: BackgroundTasks,
    ) -> None:
        self._channel_id = channel_id
        self._publish = publish
        self._log = log
        self._tasks = tasks
        self._last: dict[str, tuple[str, str]] = {}
        self._queue: deque[tuple[str, tuple[str, str], StatusEvent]] = deque()
        self._draining = False
        self._idle: list[Deferred[None]] = []

    def report(
        self,
        component: str,
        status: str,
        type_: str,
        message: str,
        *,
        details: dict[str, Any] | None = None,
        reasons: list[str] | None = None,
    ) -> None:
        """Queue a status event unless it repeats its component's previous one."""
        key = (status, type_)
        if self._last.get(component) == key:
            return
        self._last[component] = key
        event = status_event(
            component=component,
            status=status,
            type=type_,
            message=message,
            details=details,
            transport_name=self._channel_id,
        )
        if reasons:
            event["reasons"] = list(reasons)
        self._queue.append((component, key, event))
        if not self._draining:
            self._draining = True
            self._tasks.spawn(self._drain(), "publish statuses")

    async def flush(self) -> None:
        """Return once every status reported so far has been published."""
        if self._draining:
            idle: Deferred[None] = Deferred()
            self._idle.append(idle)
            await idle

    async def _drain(self) -> None:
        try:
            while self._queue:
                component, key, event = self._queue.popleft()
                try:
                    await self._publish(event)
                except Exception:
                    self._log.failure(
                        "Could not publish a {component} status event",
                        component=component,
                    )
                    if self._last.get(component) == key:
                        del self._last[component]
        finally:
            self._draining = False
            waiters, self._idle = self._idle, []
            for waiter in waiters:
                waiter.callback(None)
