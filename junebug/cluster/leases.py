"""This process's ownership leases on channels, with fencing tokens.

A lease is the key ``cluster:owner:<channel id>`` holding
``<process id>:<token>``, where the token was taken from ``INCR
cluster:fence:<channel id>`` when the lease was acquired, so tokens grow with
every new owner.  Acquire is ``SET NX`` with the lease's TTL, renew is
compare-and-expire (:data:`RENEW_BATCH` leases in one script call), release
is compare-and-delete: a process can only extend
or end its own lease.

Self-fencing: each lease has a local *deadline*, ``(monotonic time the
renewal was sent) + lease - margin``.  Redis starts the TTL when it receives
the command, which is later, so the holder always believes it has lost the
lease before Redis frees it for someone else.  When the deadline passes
without a successful renewal (Redis away, the process paused), the lease is
dropped here and ``on_lost`` stops the channel's transport;
:meth:`Leases.holds` is checked again before each outbound message is handed
to a transport.  Only this process's monotonic durations and Redis's own
expiry are compared, never wall clocks of different machines.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

import attrs
from twisted.internet.defer import ensureDeferred, gatherResults
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from junebug.stores import keys
from junebug.stores.backend import KeyValueBackend

log = Logger()

#: Leases renewed by one Redis script call.
RENEW_BATCH = 250


@attrs.frozen
class Owner:
    """Who holds a channel's lease, as stored in Redis."""

    process: str
    token: int

    @classmethod
    def parse(cls, value: str | None) -> Owner | None:
        """The owner in a lease value; ``None`` for no (or a garbled) lease."""
        if value is None:
            return None
        process, _, token = value.rpartition(":")
        if not process or not token.isdigit():
            return None
        return cls(process, int(token))

    def value(self) -> str:
        return f"{self.process}:{self.token}"


@attrs.define(eq=False)
class _Lease:
    owner: Owner
    deadline: float
    timer: IDelayedCall | None = None


def margin_for(lease_seconds: float) -> float:
    """How much earlier than Redis the holder gives its lease up."""
    return min(1.0, lease_seconds / 5)


class Leases:
    """The leases this process holds, renewed and fenced.

    ``monotonic`` measures the local deadlines (``time.monotonic`` in
    production; a test passes its clock's ``seconds``); ``clock`` schedules
    the deadline timers.
    """

    def __init__(
        self,
        backend: KeyValueBackend,
        clock: IReactorTime,
        process_id: str,
        lease_seconds: float,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        on_lost: Callable[[str], object] = lambda channel_id: None,
    ) -> None:
        self._backend = backend
        self._clock = clock
        self.process_id = process_id
        self.lease_seconds = lease_seconds
        self._monotonic = monotonic
        self.on_lost = on_lost
        self._held: dict[str, _Lease] = {}

    @property
    def _ttl_ms(self) -> int:
        return max(1, round(self.lease_seconds * 1000))

    def _valid_for(self, sent: float) -> float:
        return sent + self.lease_seconds - margin_for(self.lease_seconds)

    def holds(self, channel_id: str) -> bool:
        """True while this process may act as the channel's owner."""
        lease = self._held.get(channel_id)
        return lease is not None and self._monotonic() < lease.deadline

    def token(self, channel_id: str) -> int | None:
        lease = self._held.get(channel_id)
        return None if lease is None else lease.owner.token

    def held(self) -> list[str]:
        """Channels whose lease this process holds (or did until a deadline
        whose timer has not fired yet)."""
        return sorted(self._held)

    def _keep(self, channel_id: str, owner: Owner, sent: float) -> None:
        lease = self._held.get(channel_id)
        if lease is None:
            lease = self._held[channel_id] = _Lease(owner, self._valid_for(sent))
        else:
            lease.deadline = self._valid_for(sent)
        if lease.timer is not None and lease.timer.active():
            lease.timer.cancel()
        delay = max(0.0, lease.deadline - self._monotonic())
        lease.timer = self._clock.callLater(delay, self._expired, channel_id, lease)

    def _expired(self, channel_id: str, lease: _Lease) -> None:
        if self._held.get(channel_id) is not lease:
            return
        remaining = lease.deadline - self._monotonic()
        if remaining > 0:  # renewed meanwhile by a clock that ran slow
            lease.timer = self._clock.callLater(
                remaining, self._expired, channel_id, lease
            )
            return
        log.warn(
            "Lease on channel {channel_id} ran out without a renewal: "
            "stopping its transport",
            channel_id=channel_id,
        )
        self._drop(channel_id)
        self.on_lost(channel_id)

    def _drop(self, channel_id: str) -> _Lease | None:
        lease = self._held.pop(channel_id, None)
        if lease is not None and lease.timer is not None and lease.timer.active():
            lease.timer.cancel()
        return lease

    async def acquire(self, channel_id: str) -> bool:
        """Take the channel's lease if nobody holds it; True if it is mine."""
        if self.holds(channel_id):
            return True
        token = await self._backend.incr(keys.cluster_fence(channel_id))
        owner = Owner(self.process_id, token)
        sent = self._monotonic()
        key = keys.cluster_owner(channel_id)
        if not await self._backend.set_if_absent(key, owner.value(), self._ttl_ms):
            return False
        self._keep(channel_id, owner, sent)
        return True

    async def _renew(self, batch: list[tuple[str, _Lease]]) -> None:
        sent = self._monotonic()
        pairs = [(keys.cluster_owner(cid), lease.owner.value()) for cid, lease in batch]
        try:
            renewed = await self._backend.expire_if_equal_many(pairs, self._ttl_ms)
        except Exception as exc:
            # The deadline timers stop the transports if this goes on.
            log.warn(
                "Could not renew the leases of {count} channel(s), from "
                "{first}: {error}",
                count=len(batch),
                first=batch[0][0],
                error=exc,
            )
            return
        for (channel_id, lease), done in zip(batch, renewed, strict=True):
            if self._held.get(channel_id) is not lease:
                continue  # released or lost meanwhile
            if done and sent < lease.deadline:
                self._keep(channel_id, lease.owner, sent)
            elif not done or self._monotonic() >= lease.deadline:
                log.warn(
                    "Lost the lease on channel {channel_id}: stopping its transport",
                    channel_id=channel_id,
                )
                self._drop(channel_id)
                self.on_lost(channel_id)

    async def renew_all(self) -> None:
        """Renew every lease held, :data:`RENEW_BATCH` in one script call (the
        batches concurrently); a lease found taken or gone is dropped and
        reported to ``on_lost``."""
        leases = list(self._held.items())
        batches = [
            leases[at : at + RENEW_BATCH] for at in range(0, len(leases), RENEW_BATCH)
        ]
        await gatherResults([ensureDeferred(self._renew(batch)) for batch in batches])

    async def release(self, channel_id: str) -> None:
        """Give the lease up (only if it is still mine in Redis)."""
        lease = self._drop(channel_id)
        if lease is None:
            return
        key = keys.cluster_owner(channel_id)
        try:
            await self._backend.delete_if_equal(key, lease.owner.value())
        except Exception as exc:
            log.warn(
                "Could not release the lease on {channel_id} ({error}): "
                "it expires by itself",
                channel_id=channel_id,
                error=exc,
            )

    def forget(self, channel_id: str) -> None:
        """Drop a lease here without touching Redis (it is not mine any more)."""
        self._drop(channel_id)

    def stop(self) -> None:
        """Cancel every deadline timer (the leases stay in Redis)."""
        for lease in self._held.values():
            if lease.timer is not None and lease.timer.active():
                lease.timer.cancel()

    async def owners(self, channel_ids: Iterable[str]) -> dict[str, Owner | None]:
        """The stored owner of each channel, in one round trip."""
        ids = list(channel_ids)
        values = await self._backend.mget(*(keys.cluster_owner(cid) for cid in ids))
        return {cid: Owner.parse(value) for cid, value in zip(ids, values, strict=True)}
