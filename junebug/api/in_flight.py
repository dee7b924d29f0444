"""The API requests being served, so a drain can wait for them to finish."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.web.iweb import IRequest


class InFlight:
    """Counts requests from :meth:`track` until each one finishes."""

    def __init__(self) -> None:
        self.count = 0
        self._idle: list[Deferred[bool]] = []

    def track(self, request: IRequest) -> None:
        """Count ``request`` until it is finished (or its client goes)."""
        finishing: Deferred[None] = request.notifyFinish()  # type: ignore[attr-defined]
        self.count += 1
        finishing.addBoth(self._finished)

    def _finished(self, _result: Any) -> None:
        self.count -= 1
        if self.count == 0:
            waiting, self._idle = self._idle, []
            for waiter in waiting:
                waiter.callback(True)

    async def idle(self, reactor: IReactorTime, timeout: float) -> bool:
        """Wait until no request is in flight, at most ``timeout`` seconds:
        True if they all finished, False if the time ran out first."""
        if self.count == 0:
            return True
        waiter: Deferred[bool] = Deferred()
        self._idle.append(waiter)
        timer = reactor.callLater(timeout, self._cut_off, waiter)
        finished = await waiter
        if timer.active():
            timer.cancel()
        return finished

    def _cut_off(self, waiter: Deferred[bool]) -> None:
        if waiter in self._idle:
            self._idle.remove(waiter)
            waiter.callback(False)
