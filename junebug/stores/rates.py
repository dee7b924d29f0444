"""Message and event rates, counted in ``metric_window``-second buckets.

``increment`` counts into the current bucket ``<id>:<label>:<n>`` (with
``n = int(now / window)``); ``rate`` reports the previous, complete bucket in
events per second.  Buckets expire after ``ceil(2 * window)`` seconds.
"""

from __future__ import annotations

import math

from twisted.internet.interfaces import IReactorTime

from junebug.stores import keys
from junebug.stores.backend import KeyValueBackend


class RateStore:
    """Bucketed counters over a key-value backend."""

    def __init__(
        self, backend: KeyValueBackend, clock: IReactorTime, window: float
    ) -> None:
        self._backend = backend
        self._clock = clock
        self.window = window
        self._ttl = math.ceil(2 * window)

    def _bucket(self) -> int:
        return int(self._clock.seconds() / self.window)

    async def increment(self, owner_id: str, label: str) -> None:
        await self._backend.incr(
            keys.rate_bucket(owner_id, label, self._bucket()), ttl=self._ttl
        )

    async def rate(self, owner_id: str, label: str) -> float | int:
        raw = await self._backend.get(
            keys.rate_bucket(owner_id, label, self._bucket() - 1)
        )
        if raw is None:
            return 0
        return int(raw) / self.window
