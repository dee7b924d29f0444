"""Channel and router logs kept in the store, readable through any process.

Every log entry of an owner (a channel, router or destination id; see
:mod:`junebug.channel_logs` for which events belong to whom) is appended to
the Redis list ``<owner id>:logs``, newest first, capped at
``stored_log_lines`` entries; the key's expiry (``stored_logs_ttl``) is
refreshed on every write, so the logs of an owner that is gone vanish.  An
entry whose event carries a ``message_id`` also goes to
``<owner id>:message_logs:<message id>`` (capped at ``message_log_lines``,
expiring after the longer of the message TTLs), and so do the protocol
exchanges a transport records about a message (:meth:`StoredLogs.record`,
the SMPP PDUs of an MT).  The entries are the JSON objects the log files
hold; a recorded exchange adds its fields (an SMPP PDU's decoded fields)
under ``details``.

Writing never gets in the way of the code that logs: entries are buffered
and written ``FLUSH_INTERVAL`` (50 ms) after the first of a batch, every
key's in one script call
(:meth:`~junebug.stores.backend.KeyValueBackend.push_capped_many`), with at
most one batch in flight.  While a batch is
in flight the buffer keeps only the newest entries each key can hold, for at
most ``MAX_PENDING_KEYS`` keys and ``MAX_PENDING_ENTRIES`` entries in all
(more are dropped and counted); when the store is away the batch is dropped
and counted (``junebug_stored_log_entries_dropped_total``), and one warning
without an owner is logged (it cannot come back into a stored log).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any, Final

from prometheus_client import Counter
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import (
    IDelayedCall,
    IReactorFromThreads,
    IReactorTime,
)
from twisted.logger import Logger
from twisted.python import threadable

from junebug.stores import keys
from junebug.stores.backend import CappedPush, KeyValueBackend

__all__ = ["MessageRecorder", "StoredLogs"]

DEFAULT_LINES: Final = 1000
DEFAULT_MESSAGE_LINES: Final = 200
DEFAULT_TTL: Final = 7 * 24 * 3600
#: Keys whose entries may wait in memory for the store at once.
MAX_PENDING_KEYS: Final = 10_000
#: Entries that may wait in memory for the store at once (all keys).
MAX_PENDING_ENTRIES: Final = 100_000
#: Seconds entries are gathered before they are written: one script call per
#: interval instead of one per reactor turn (under load that is the difference
#: between a few dozen calls a second and one per message).
FLUSH_INTERVAL: Final = 0.05
#: How long :meth:`StoredLogs.stop` waits for the last entries to be written.
STOP_TIMEOUT: Final = 2.0

#: ``record(message_id, text, fields)``: one protocol exchange about a message.
MessageRecorder = Callable[[str, str, dict[str, Any]], None]

log = Logger()


class StoredLogs:
    """The store side of the channel logs: buffered writes and the reads."""

    def __init__(
        self,
        backend: KeyValueBackend,
        clock: IReactorTime,
        *,
        lines: int = DEFAULT_LINES,
        ttl: int = DEFAULT_TTL,
        message_lines: int = DEFAULT_MESSAGE_LINES,
        message_ttl: int = DEFAULT_TTL,
        dropped: Counter | None = None,
        max_pending_keys: int = MAX_PENDING_KEYS,
        max_pending_entries: int = MAX_PENDING_ENTRIES,
        interval: float = FLUSH_INTERVAL,
    ) -> None:
        self._backend = backend
        self._clock = clock
        self._threads = IReactorFromThreads(clock, None)
        self.lines = lines
        self.ttl = ttl
        self.message_lines = message_lines
        self.message_ttl = message_ttl
        self._dropped = dropped
        self._max_keys = max_pending_keys
        self._max_entries = max_pending_entries
        self._interval = interval
        self._pending_entries = 0
        self._lock = threading.Lock()
        #: key -> (cap, ttl, entries oldest first)
        self._pending: dict[str, tuple[int, int, list[dict[str, Any]]]] = {}
        self._scheduled = False
        self._turn: IDelayedCall | None = None
        self._writing: Deferred[None] | None = None
        self._idle: list[Deferred[None]] = []
        self._failing = False
        self._accepting = True

    # -- writing (any thread; never raises) -------------------------------------

    def add_line(
        self, owner_id: str, entry: dict[str, Any], message_id: str | None = None
    ) -> None:
        """Store one log entry of ``owner_id`` (and of its message, if any)."""
        self._add(keys.owner_logs(owner_id), self.lines, self.ttl, entry)
        if message_id:
            self._add_message(owner_id, message_id, {**entry, "message_id": message_id})

    def record(
        self, owner_id: str, message_id: str, text: str, fields: dict[str, Any]
    ) -> None:
        """Store one protocol exchange about ``message_id`` (its message log only)."""
        entry = {
            "logger": owner_id,
            "level": 20,
            "timestamp": self._clock.seconds(),
            "message": text,
            "message_id": message_id,
            "details": fields,
        }
        self._add_message(owner_id, message_id, entry)

    def recorder(self, owner_id: str) -> MessageRecorder:
        """:meth:`record` for one owner (what a transport is given)."""

        def record(message_id: str, text: str, fields: dict[str, Any]) -> None:
            self.record(owner_id, message_id, text, fields)

        return record

    def _add_message(
        self, owner_id: str, message_id: str, entry: dict[str, Any]
    ) -> None:
        key = keys.message_logs(owner_id, message_id)
        self._add(key, self.message_lines, self.message_ttl, entry)

    def _add(self, key: str, cap: int, ttl: int, entry: dict[str, Any]) -> None:
        if not self._accepting:
            return
        with self._lock:
            pending = self._pending.get(key)
            full = self._pending_entries >= self._max_entries
            if pending is None and len(self._pending) >= self._max_keys:
                full = True
            if full:
                self._count_dropped(1)
                return
            if pending is None:
                pending = self._pending[key] = (cap, ttl, [])
            entries = pending[2]
            entries.append(entry)
            self._pending_entries += 1
            if len(entries) > cap:
                # The list keeps only the newest ``cap``: so does the buffer.
                self._pending_entries -= len(entries) - cap
                del entries[: len(entries) - cap]
            if self._scheduled:
                return
            self._scheduled = True
        if threadable.isInIOThread() or self._threads is None:
            self._turn = self._clock.callLater(self._interval, self._turn_ended)
        else:
            self._threads.callFromThread(self._schedule_from_thread)

    def _schedule_from_thread(self) -> None:
        self._turn = self._clock.callLater(self._interval, self._turn_ended)

    def _count_dropped(self, count: int) -> None:
        if self._dropped is not None and count:
            self._dropped.inc(count)

    def _turn_ended(self) -> None:
        self._turn = None
        with self._lock:
            self._scheduled = False
        if self._writing is None:
            self._start_write()

    def _start_write(self) -> None:
        with self._lock:
            batch, self._pending = self._pending, {}
            self._pending_entries = 0
        if not batch:
            self._wake_idle()
            return
        writing = Deferred.fromCoroutine(self._write(batch))
        self._writing = writing
        writing.addBoth(self._written)

    async def _write(
        self, batch: dict[str, tuple[int, int, list[dict[str, Any]]]]
    ) -> None:
        try:
            pushes = [
                CappedPush(
                    key, [json.dumps(entry, default=str) for entry in entries], cap, ttl
                )
                for key, (cap, ttl, entries) in batch.items()
            ]
            await self._backend.push_capped_many(pushes)
        except Exception as exc:
            self._count_dropped(sum(len(entries) for _, _, entries in batch.values()))
            if not self._failing:
                self._failing = True
                # No owner key: this warning is not stored itself.
                log.warn(
                    "Could not store channel log entries: {error}",
                    error=f"{type(exc).__name__}: {exc}",
                )
        else:
            self._failing = False

    def _written(self, result: object) -> None:
        self._writing = None
        with self._lock:
            more = bool(self._pending)
        if more:
            self._start_write()
        else:
            self._wake_idle()

    def _wake_idle(self) -> None:
        waiters, self._idle = self._idle, []
        for waiter in waiters:
            waiter.callback(None)

    async def flush(self) -> None:
        """Return once every entry added so far was written (or dropped)."""
        while True:
            if self._writing is None:
                with self._lock:
                    empty = not self._pending
                if empty:
                    return
                self._start_write()
                if self._writing is None:
                    return
            waiter: Deferred[None] = Deferred()
            self._idle.append(waiter)
            await waiter

    async def stop(self) -> None:
        """Stop accepting entries; write those buffered (for a moment at most)."""
        self._accepting = False
        flushing = Deferred.fromCoroutine(self.flush())
        flushing.addTimeout(STOP_TIMEOUT, self._clock)
        try:
            await flushing
        except Exception:
            log.warn("Stored channel logs not all written before stopping")
        turn, self._turn = self._turn, None
        if turn is not None and turn.active():
            turn.cancel()

    # -- reading and forgetting ---------------------------------------------------

    async def read_lines(self, owner_id: str, n: int) -> list[dict[str, Any]]:
        """The newest ``n`` entries of ``owner_id``, newest first.  Entries of
        this process still in the buffer are written first."""
        await self.flush()
        raw = await self._backend.lrange(keys.owner_logs(owner_id), 0, n - 1)
        return _decoded(raw)

    async def read_message(
        self, owner_id: str, message_id: str
    ) -> list[dict[str, Any]]:
        """Every stored entry about ``message_id`` of ``owner_id``, oldest first."""
        await self.flush()
        key = keys.message_logs(owner_id, message_id)
        raw = await self._backend.lrange(key, 0, self.message_lines - 1)
        return _decoded(reversed(raw))

    async def forget(self, owner_id: str) -> None:
        """Delete ``owner_id``'s log list (its message logs expire by themselves)."""
        key = keys.owner_logs(owner_id)
        with self._lock:
            dropped = self._pending.pop(key, None)
            if dropped is not None:
                self._pending_entries -= len(dropped[2])
        await self._backend.delete(key)


def _decoded(raw: Any) -> list[dict[str, Any]]:
    entries = []
    for item in raw:
        try:
            entry = json.loads(item)
        except ValueError:
            continue
        if isinstance(entry, dict):
            entries.append(entry)
    return entries
