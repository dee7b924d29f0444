"""A channel's rate limit: ``rate_limit_count`` sends per ``rate_limit_window`` s.

The budget lives in the key-value backend (Redis), under the channel's id, so
every process that runs the channel's transport (one at a time, or a
transport restarted elsewhere) spends from the same one
(:meth:`~junebug.stores.backend.KeyValueBackend.take_budget`, a sliding
window: at most ``count`` units in any ``window`` seconds).

:class:`SendBudget` is the channel's side.  Each send awaits
:meth:`SendBudget.spend` before it goes to the connection; callers wait in
one queue, first come first served, so messages keep their order and none is
refused.  One loop asks the backend for the whole queue at once (up to
:data:`MAX_BATCH` requests per round trip): a quiet channel pays one round
trip per message, a busy one far less.  Units are taken only for a caller
that is waiting and is released at once: a unit reserved now but used later
would count in the wrong window and let more than ``count`` through.  A
caller that gives up (the channel stopping) leaves its units spent: never
more than the limit, at worst a little less.

A unit is spent when the backend grants it; the connection sees the send a
little later, by a delay that varies, so one window's last sends may come in
late and close to the next window's first ones.  ``margin`` (the gateway's
``rate_limit_margin``) keeps every unit counted that much longer than the
window, so the far end too sees at most ``count`` in any window.

While callers have to wait for the window, the channel is *held back*: the
``on_held`` callback gets True, and False once a whole window has gone by
with nobody waiting (at once if the limit is removed), so that a channel
sending at its limit does not flap between the two.  The
limit is read from the channel's properties on every round, so a change
(``POST /channels/<id>``) applies to the messages already waiting.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import attrs
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from junebug.errors import TransportStopped
from junebug.stores import keys
from junebug.stores.backend import KeyValueBackend

__all__ = ["MAX_BATCH", "RateLimit", "SendBudget"]

#: The most requests one round trip to the backend asks for.
MAX_BATCH = 100
#: The shortest pause before asking again (seconds): a floor against spinning.
MIN_RETRY = 0.001
#: The window of a ``rate_limit_count`` given without ``rate_limit_window``.
DEFAULT_WINDOW = 1


@attrs.frozen
class RateLimit:
    """``count`` units per sliding ``window`` seconds."""

    count: int
    window: float

    @classmethod
    def of(cls, properties: Mapping[str, Any]) -> RateLimit | None:
        """The limit channel properties set; None without one (no count, or 0)."""
        count = properties.get("rate_limit_count")
        if not isinstance(count, int) or count <= 0:
            return None
        window = properties.get("rate_limit_window")
        if not isinstance(window, int | float) or window <= 0:
            window = DEFAULT_WINDOW
        return cls(count, window)

    def describe(self) -> str:
        return f"{self.count} per {self.window:g}s"

    def view(self) -> dict[str, Any]:
        """The limit as a channel's status shows it."""
        return {"count": self.count, "window": self.window}


class WaitObserver(Protocol):
    def observe(self, amount: float) -> None: ...


@attrs.define(eq=False)
class _Waiter:
    cost: int
    since: float
    granted: Deferred[None] = attrs.field(factory=Deferred)


class SendBudget:
    """The sends of one channel, paced by its rate limit; see the module doc."""

    log = Logger()

    def __init__(
        self,
        channel_id: str,
        backend: KeyValueBackend,
        clock: IReactorTime,
        limit: Callable[[], RateLimit | None],
        *,
        on_held: Callable[[bool, RateLimit | None], object] = lambda *_: None,
        wait_seconds: WaitObserver | None = None,
        margin: float = 0.0,
    ) -> None:
        self.channel_id = channel_id
        self._key = keys.send_budget(channel_id)
        self._backend = backend
        self._clock = clock
        self._limit = limit
        self._on_held = on_held
        self._wait_seconds = wait_seconds
        self._margin = margin
        self._queue: deque[_Waiter] = deque()
        self._running = False
        self._stopped = False
        self._nap: Deferred[None] | None = None
        self._timer: IDelayedCall | None = None
        self._unhold: IDelayedCall | None = None
        #: True while callers wait for the window (the channel is held back).
        self.held = False

    @property
    def waiting(self) -> int:
        """How many sends are waiting for budget."""
        return len(self._queue)

    async def spend(self, cost: int = 1) -> None:
        """Return once ``cost`` units are spent for the caller's send.

        Raises :class:`~junebug.errors.TransportStopped` if the budget stops
        first, or the backend's error if it cannot be reached (both send the
        message back to its queue).
        """
        if self._stopped:
            raise TransportStopped(f"channel {self.channel_id} is stopping")
        if not self._queue and self._limit() is None:
            return
        waiter = _Waiter(max(1, cost), self._clock.seconds())
        self._queue.append(waiter)
        if not self._running:
            self._running = True
            Deferred.fromCoroutine(self._run()).addErrback(
                lambda f: self.log.failure(
                    "Rate limit of {channel_id} failed", f, channel_id=self.channel_id
                )
            )
        await waiter.granted

    def changed(self) -> None:
        """The limit changed: look again now rather than at the planned time."""
        self._wake()

    def stop(self) -> None:
        """Fail every waiting send (their messages go back to the queue) and
        every later one."""
        self._stopped = True
        self.give_back()
        self._cancel_unhold()

    def give_back(self) -> None:
        """Fail every waiting send (their messages go back to the queue);
        later sends wait as before (the transport stops, the channel stays)."""
        queue, self._queue = self._queue, deque()
        for waiter in queue:
            if not waiter.granted.called:
                waiter.granted.errback(
                    TransportStopped(f"channel {self.channel_id} is stopping")
                )
        self._wake()
        self.held = False  # said at the next start (it clears the status)

    async def _run(self) -> None:
        try:
            while self._queue and not self._stopped:
                await self._round()
        finally:
            self._running = False
            if self.held and not self._stopped:
                self._unhold_later()

    async def _round(self) -> None:
        limit = self._limit()
        if limit is None:
            self._release(len(self._queue))
            self._cancel_unhold()
            self._set_held(False, None)
            return
        batch = [w.cost for w, _ in zip(self._queue, range(MAX_BATCH), strict=False)]
        try:
            grant = await self._backend.take_budget(
                self._key, batch, limit.count, limit.window + self._margin
            )
        except Exception as exc:
            # Not sent, so back to the queue: those waiting now fail.
            queue, self._queue = self._queue, deque()
            for waiter in queue:
                if not waiter.granted.called:
                    waiter.granted.errback(exc)
            return
        if self._stopped:
            return
        self._release(grant.granted)
        if grant.granted < len(batch):
            self._cancel_unhold()
            self._set_held(True, limit)
            await self._sleep(max(grant.retry_after, MIN_RETRY))

    def _release(self, count: int) -> None:
        now = self._clock.seconds()
        for _ in range(min(count, len(self._queue))):
            waiter = self._queue.popleft()
            if waiter.granted.called:
                continue  # cancelled while waiting: its units stay spent
            if self._wait_seconds is not None:
                self._wait_seconds.observe(now - waiter.since)
            waiter.granted.callback(None)

    def _unhold_later(self) -> None:
        limit = self._limit()
        if limit is None:
            self._set_held(False, None)
        elif self._unhold is None:
            self._unhold = self._clock.callLater(
                limit.window, self._set_held, False, limit
            )

    def _cancel_unhold(self) -> None:
        unhold, self._unhold = self._unhold, None
        if unhold is not None and unhold.active():
            unhold.cancel()

    def _set_held(self, held: bool, limit: RateLimit | None) -> None:
        if not held:
            self._unhold = None
        if held != self.held:
            self.held = held
            self._on_held(held, limit)

    async def _sleep(self, seconds: float) -> None:
        nap = self._nap = Deferred()
        self._timer = self._clock.callLater(seconds, self._wake)
        await nap

    def _wake(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None and timer.active():
            timer.cancel()
        nap, self._nap = self._nap, None
        if nap is not None:
            nap.callback(None)
