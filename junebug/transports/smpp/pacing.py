"""How fast MT ``submit_sm`` PDUs may go: a rate limit and the SMSC's throttle.

:class:`RateLimiter` spaces sends evenly at ``rate`` per second.  Each caller
reserves the next free send time (a "generic cell rate" schedule), so the
long-run rate is exact however late the timers fire, and callers go in the
order they asked.  Unused time is not banked: after an idle spell the next
send goes at once, and the one after it ``1/rate`` seconds later.

:class:`ThrottleGate` pauses every sender after the SMSC answers
``ESME_RTHROTTLED`` or ``ESME_RMSGQFUL``: the wait starts at ``base_delay``
and doubles while refusals come without an acceptance in between, up to
``max_delay``.  The gate is *active* (the channel's status is ``throttled``)
from the first refusal until every refused message has been sent or given up.
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import deferLater

__all__ = ["RateLimiter", "ThrottleGate"]


class RateLimiter:
    """At most ``rate`` acquisitions per second (0: unlimited)."""

    def __init__(self, clock: IReactorTime, rate: float) -> None:
        self._clock = clock
        self.rate = rate
        self._interval = 1.0 / rate if rate > 0 else 0.0
        self._next = 0.0

    def acquire(self) -> Deferred[None]:
        """Fires when the caller may send."""
        if self._interval == 0.0:
            return succeed(None)
        now = self._clock.seconds()
        slot = max(self._next, now)
        self._next = slot + self._interval
        if slot <= now:
            return succeed(None)
        return deferLater(self._clock, slot - now, lambda: None)


class ThrottleGate:
    """Shared back-off after the SMSC refuses for load; see the module docs."""

    def __init__(
        self,
        clock: IReactorTime,
        base_delay: float,
        max_delay: float,
        on_change: Callable[[bool], object],
    ) -> None:
        self._clock = clock
        self.base_delay = base_delay
        self.max_delay = max(max_delay, base_delay)
        self._on_change = on_change
        self._until = 0.0
        self._streak = 0
        self._retrying = 0
        self.active = False

    @property
    def retrying(self) -> int:
        """How many refused messages are waiting to be sent again."""
        return self._retrying

    def refused(self, first: bool) -> float:
        """The SMSC refused a PDU; return how long its sender waits.

        ``first`` is true the first time this message was refused; the
        sender must then call :meth:`done` once the message is settled.
        """
        now = self._clock.seconds()
        self._streak += 1
        delay = min(self.max_delay, self.base_delay * 2 ** min(self._streak - 1, 30))
        self._until = max(self._until, now + delay)
        if first:
            self._retrying += 1
        if not self.active:
            self.active = True
            self._on_change(True)
        return self._until - now

    def accepted(self) -> None:
        """The SMSC accepted a PDU: the next refusal waits the base delay."""
        self._streak = 0

    def done(self) -> None:
        """A refused message is settled (sent, rejected or given up)."""
        self._retrying -= 1
        if self._retrying <= 0:
            self._retrying = 0
            if self.active:
                self.active = False
                self._on_change(False)

    def wait(self) -> Deferred[None] | None:
        """A Deferred to wait on while the gate is closed, else None."""
        remaining = self._until - self._clock.seconds()
        if remaining <= 0:
            return None
        return deferLater(self._clock, remaining, lambda: None)
