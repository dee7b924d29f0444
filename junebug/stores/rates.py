"""Message and event rates, counted in ``metric_window``-second buckets.

``increment`` counts into the current bucket ``<id>:<label>:<n>`` (with
``n = int(now / window)``); ``rate`` reports the previous, complete bucket in
events per second.  Buckets expire after ``ceil(2 * window)`` seconds.

Counts are added up in memory and written with one ``INCRBY`` per key every
``flush_interval`` seconds (at most a quarter of the window), so counting a
message costs no Redis round trip.  A bucket is read only once it is complete,
and every count reaches Redis at most ``flush_interval`` after it was made.
"""

from __future__ import annotations

import math
from collections import Counter

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from junebug.stores import keys
from junebug.stores.backend import KeyValueBackend

MAX_FLUSH_INTERVAL = 0.5


class RateStore:
    """Bucketed counters over a key-value backend."""

    log = Logger()

    def __init__(
        self,
        backend: KeyValueBackend,
        clock: IReactorTime,
        window: float,
        flush_interval: float | None = None,
    ) -> None:
        self._backend = backend
        self._clock = clock
        self.window = window
        self._ttl = math.ceil(2 * window)
        self.flush_interval = flush_interval or min(MAX_FLUSH_INTERVAL, window / 4)
        self._pending: Counter[str] = Counter()
        self._loop: LoopingCall | None = None
        #: The periodic flush still writing, which stop() waits for.
        self._flushing: Deferred[None] | None = None

    def _bucket(self) -> int:
        return int(self._clock.seconds() / self.window)

    def start(self) -> None:
        """Flush counts periodically (without it, every increment writes)."""
        if self._loop is None:
            self._loop = LoopingCall(self._periodic_flush)
            self._loop.clock = self._clock
            self._loop.start(self.flush_interval, now=False)

    async def stop(self) -> None:
        loop, self._loop = self._loop, None
        if loop is not None and loop.running:
            loop.stop()
        if self._flushing is not None:
            await self._flushing
        await self.flush()

    async def increment(self, owner_id: str, label: str) -> None:
        key = keys.rate_bucket(owner_id, label, self._bucket())
        if self._loop is None:
            await self._backend.incr(key, ttl=self._ttl)
        else:
            self._pending[key] += 1

    async def flush(self) -> None:
        """Write the counts made since the last flush."""
        pending, self._pending = self._pending, Counter()
        for key, count in pending.items():
            await self._backend.incr(key, ttl=self._ttl, amount=count)

    def _periodic_flush(self) -> Deferred[None]:
        flushing = self._flushing = ensureDeferred(self._flush_logged())

        def done(_: None) -> None:
            if self._flushing is flushing:
                self._flushing = None

        flushing.addCallback(done)
        return flushing

    async def _flush_logged(self) -> None:
        try:
            await self.flush()
        except Exception:
            self.log.failure("Could not write message rates")

    async def rate(self, owner_id: str, label: str) -> float | int:
        raw = await self._backend.get(
            keys.rate_bucket(owner_id, label, self._bucket() - 1)
        )
        if raw is None:
            return 0
        return int(raw) / self.window
