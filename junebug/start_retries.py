"""Starts that failed because Redis or RabbitMQ was away, tried again later.

A stored channel or router that cannot start for such a reason (at ``jb``
start, or when a change is rolled back) is handed to :class:`StartRetries`,
which calls its start function again after a capped exponential back-off until
it succeeds, the owner gives up on it (:meth:`StartRetries.discard`, e.g.
because it was deleted or started by a request) or Junebug stops.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from twisted.internet.defer import ensureDeferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from junebug.errors import BACKEND_AWAY

StartFunction = Callable[[], Awaitable[None]]


class StartRetries:
    """Pending starts by key (a channel or router id), retried together."""

    def __init__(
        self,
        reactor: IReactorTime,
        log: Logger,
        initial_delay: float = 1.0,
        max_delay: float = 30.0,
    ) -> None:
        self._reactor = reactor
        self._log = log
        self._initial = initial_delay
        self._max = max_delay
        self._pending: dict[str, StartFunction] = {}
        self._failures = 0
        self._call: IDelayedCall | None = None
        self._running = False

    def pending(self) -> list[str]:
        """The keys waiting for a retry."""
        return sorted(self._pending)

    def add(self, key: str, start: StartFunction) -> None:
        """Call ``start`` again later (replacing what ``key`` had)."""
        self._pending[key] = start
        self._schedule()

    def discard(self, key: str) -> None:
        self._pending.pop(key, None)

    def stop(self) -> None:
        """Forget every pending start (Junebug is stopping)."""
        self._pending.clear()
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None

    def _schedule(self) -> None:
        if self._call is not None or self._running or not self._pending:
            return
        delay = min(self._initial * 2**self._failures, self._max)
        self._call = self._reactor.callLater(delay, self._fire)

    def _fire(self) -> None:
        self._call = None
        self._running = True
        ensureDeferred(self._retry_all()).addErrback(
            lambda failure: self._log.failure("Retrying starts failed", failure)
        )

    async def _retry_all(self) -> None:
        failed = False
        try:
            for key, start in list(self._pending.items()):
                if self._pending.get(key) is not start:
                    continue  # discarded or replaced meanwhile
                try:
                    await start()
                except BACKEND_AWAY as exc:
                    failed = True
                    self._log.warn(
                        "{key} still cannot start: {error}; retrying later",
                        key=key,
                        error=exc,
                    )
                    continue
                except Exception:
                    self._log.failure("{key} failed to start; not retried", key=key)
                if self._pending.get(key) is start:
                    del self._pending[key]
        finally:
            self._failures = self._failures + 1 if failed else 0
            self._running = False
            self._schedule()
