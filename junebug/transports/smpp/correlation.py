"""Requests awaiting their responses, matched by sequence number.

SMPP lets many requests be outstanding at once; each response carries its
request's ``sequence_number``.  :class:`RequestTracker` holds a Deferred per
outstanding request, fires it with the response PDU, fails it on demand (the
connection ended, the response could not be decoded) and reports requests
whose response is overdue.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.python.failure import Failure

from junebug.transports.smpp.pdu import PDU

__all__ = ["RequestTracker"]


@attrs.define(slots=True)
class _Pending:
    deferred: Deferred[PDU]
    command_id: int
    deadline: float | None


class RequestTracker:
    """Requests awaiting their responses, by sequence number.

    Requests with a timeout all share one timeout (the session's response
    timeout), so they expire in the order they were sent: a single timer,
    set for the oldest, replaces one timer per request.
    """

    def __init__(
        self,
        clock: IReactorTime,
        on_timeout: Callable[[int, int], None],
    ) -> None:
        self._clock = clock
        self._on_timeout = on_timeout
        self._pending: dict[int, _Pending] = {}
        self._timed: dict[int, float] = {}  # insertion order = deadline order
        self._sweep: IDelayedCall | None = None

    def __len__(self) -> int:
        return len(self._pending)

    def add(
        self, sequence_number: int, command_id: int, timeout: float | None
    ) -> Deferred[PDU]:
        if sequence_number in self._pending:
            raise ValueError(f"sequence number {sequence_number} is in use")
        deferred: Deferred[PDU] = Deferred()
        deadline = None
        if timeout is not None:
            deadline = self._clock.seconds() + timeout
            self._timed[sequence_number] = deadline
            if self._sweep is None:
                self._sweep = self._clock.callLater(timeout, self._expire)
        self._pending[sequence_number] = _Pending(deferred, command_id, deadline)
        return deferred

    def resolve(self, pdu: PDU) -> bool:
        """Fire the request ``pdu`` answers; False if none is waiting."""
        pending = self._pending.pop(pdu.sequence_number, None)
        if pending is None:
            return False
        self._timed.pop(pdu.sequence_number, None)
        pending.deferred.callback(pdu)
        return True

    def fail(self, sequence_number: int, error: Exception) -> bool:
        pending = self._pending.pop(sequence_number, None)
        if pending is None:
            return False
        self._timed.pop(sequence_number, None)
        pending.deferred.errback(Failure(error))
        return True

    def fail_all(self, error: Exception) -> None:
        self.stop()
        pending, self._pending = self._pending, {}
        self._timed.clear()
        for entry in pending.values():
            entry.deferred.errback(Failure(error))

    def stop(self) -> None:
        if self._sweep is not None and self._sweep.active():
            self._sweep.cancel()
        self._sweep = None

    def _expire(self) -> None:
        self._sweep = None
        now = self._clock.seconds()
        expired = []
        for sequence_number, deadline in self._timed.items():
            if deadline > now:
                self._sweep = self._clock.callLater(deadline - now, self._expire)
                break
            expired.append(sequence_number)
        for sequence_number in expired:
            del self._timed[sequence_number]
            pending = self._pending.get(sequence_number)
            if pending is not None:
                self._on_timeout(sequence_number, pending.command_id)
