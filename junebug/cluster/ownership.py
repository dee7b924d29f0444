"""The registry's :class:`~junebug.channels.ownership.Ownership` in a cluster:
a channel's transport runs here only while this process holds its lease."""

from __future__ import annotations

from junebug.cluster.leases import Leases
from junebug.stores import keys
from junebug.stores.backend import KeyValueBackend

#: Seconds a deleted channel's tombstone lasts (``keys.cluster_deleted``).
TOMBSTONE = 3600


class ClusterOwnership:
    """Ownership by lease (:mod:`junebug.cluster.leases`).

    A channel starting here (created, changed, or stored when ``jb``
    starts) takes its lease if it is free; the reconciler then moves the
    excess to processes with fewer.
    """

    def __init__(self, backend: KeyValueBackend, leases: Leases) -> None:
        self._backend = backend
        self.leases = leases

    def holds(self, channel_id: str) -> bool:
        return self.leases.holds(channel_id)

    async def claim(self, channel_id: str) -> bool:
        return await self.leases.acquire(channel_id)

    async def release(self, channel_id: str) -> None:
        await self.leases.release(channel_id)

    async def revision(self, channel_id: str) -> int:
        raw = await self._backend.get(keys.cluster_revision(channel_id))
        return int(raw) if raw is not None and raw.isdigit() else 0

    async def changed(self, channel_id: str) -> int:
        return await self._backend.incr(keys.cluster_revision(channel_id))

    async def forget(self, channel_id: str) -> None:
        await self.leases.release(channel_id)
        await self._backend.set(keys.cluster_deleted(channel_id), "1", ttl=TOMBSTONE)
        await self._backend.delete(
            keys.cluster_revision(channel_id), keys.cluster_fence(channel_id)
        )
