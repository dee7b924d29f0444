"""Makes this process do its share of the gateway, again and again.

Every ``reconcile_interval`` seconds (and at once when poked, e.g. by a
control message) one pass reads the live processes, the stored channels and
their owners and revisions (one ``MGET``), then:

1. stops channels deleted through another process (and releases their lease);
2. starts the forwarding parts of channels created through another process;
3. restarts the local parts of channels changed or restarted elsewhere (their
   revision moved);
4. stops a transport whose lease this process does not hold any more
   (fencing), checking with Redis when the stored owner disagrees;
5. releases the channels placement gives to others (over quota), and
   acquires and starts those it gives to this process
   (:mod:`junebug.cluster.placement`);
6. starts, restarts or stops the routers created, changed or deleted
   through another process (every process runs every router).

A second loop renews the leases and the heartbeat every ``lease_seconds/3``.
Nothing depends on a control message arriving: a missed one only costs up
to one interval.  Passes never overlap; a poke during a pass runs another
one right after it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Protocol

from twisted.internet.defer import (
    Deferred,
    ensureDeferred,
    gatherResults,
)
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from junebug.channels.registry import ChannelRegistry
from junebug.cluster.leases import Leases, Owner
from junebug.cluster.members import Membership
from junebug.cluster.placement import assign, plan_for
from junebug.stores import keys
from junebug.stores.backend import KeyValueBackend

log = Logger()

#: How many channels one pass works on at once.
CONCURRENCY = 16

#: Called with (channel id, the process now expected to take it) after a
#: channel was released, so that process can acquire it at once.
HandedOver = Callable[[str, str | None], Awaitable[None]]


class RouterReconciler(Protocol):
    """The router registry, as far as the reconciler is concerned."""

    async def reconcile(self) -> None:
        """Catch up with router changes made through other processes."""


async def _nobody(channel_id: str, process_id: str | None) -> None:
    return None


class Reconciler:
    """The reconciliation and renewal loops of one process."""

    def __init__(
        self,
        *,
        registry: ChannelRegistry,
        backend: KeyValueBackend,
        membership: Membership,
        leases: Leases,
        clock: IReactorTime,
        interval: float,
        handed_over: HandedOver = _nobody,
    ) -> None:
        self.registry = registry
        self._backend = backend
        self.membership = membership
        self.leases = leases
        self._clock = clock
        self.interval = interval
        self.handed_over = handed_over
        self._loop: LoopingCall | None = None
        self._renewals: LoopingCall | None = None
        #: Routers to keep up with changes made elsewhere (every process runs
        #: every router); set once the router registry exists.
        self.routers: RouterReconciler | None = None
        self._pass: Deferred[None] | None = None
        self._again = False
        self.stopped = False
        leases.on_lost = self._lost

    @property
    def me(self) -> str:
        return self.membership.identity.id

    def _lost(self, channel_id: str) -> None:
        """A lease ran out or was found taken: stop the transport now."""
        stopping = ensureDeferred(self.registry.give_up(channel_id))
        stopping.addErrback(
            lambda failure: log.failure(
                "Could not stop channel {channel_id}",
                failure,
                channel_id=channel_id,
            )
        )

    async def start(self) -> None:
        """Announce this process, run one pass, then keep both loops going."""
        try:
            await self.membership.heartbeat()
        except Exception as exc:
            log.warn("Could not write the heartbeat: {error}", error=exc)
        await self.reconcile()
        self._renewals = LoopingCall(self.renew)
        self._renewals.clock = self._clock
        self._renewals.start(self.leases.lease_seconds / 3, now=False).addErrback(
            lambda failure: log.failure("Lease renewals stopped", failure)
        )
        self._loop = LoopingCall(self.reconcile)
        self._loop.clock = self._clock
        self._loop.start(self.interval, now=False).addErrback(
            lambda failure: log.failure("Reconciliation stopped", failure)
        )

    def stop(self) -> None:
        """Stop both loops (the leases stay until released or expired)."""
        self.stopped = True
        for loop in (self._loop, self._renewals):
            if loop is not None and loop.running:
                loop.stop()
        self._loop = self._renewals = None

    async def renew(self) -> None:
        await self.leases.renew_all()
        try:
            await self.membership.heartbeat()
        except Exception as exc:
            log.warn("Could not renew the heartbeat: {error}", error=exc)

    def poke(self) -> None:
        """Run a pass soon (a control message said something changed)."""
        if not self.stopped:
            ensureDeferred(self.reconcile())

    async def reconcile(self) -> None:
        """One pass (or, if one is running, another right after it)."""
        if self._pass is not None:
            self._again = True
            done: Deferred[None] = Deferred()
            self._pass.addBoth(lambda _: done.callback(None))
            await done
            return
        self._pass = Deferred()
        try:
            while True:
                self._again = False
                try:
                    await self._reconcile()
                except Exception:
                    log.failure("Reconciliation pass failed")
                if not self._again or self.stopped:
                    break
        finally:
            finished, self._pass = self._pass, None
            finished.callback(None)

    async def _reconcile(self) -> None:
        if self.stopped:
            return
        registry, leases = self.registry, self.leases
        live = [info.id for info in await self.membership.live()]
        ids = await registry.store.list_ids()
        values = await self._backend.mget(
            *(keys.cluster_owner(cid) for cid in ids),
            *(keys.cluster_revision(cid) for cid in ids),
        )
        owners = {cid: Owner.parse(v) for cid, v in zip(ids, values, strict=False)}
        revisions = {
            cid: int(v) if v is not None and v.isdigit() else 0
            for cid, v in zip(ids, values[len(ids) :], strict=True)
        }
        stored = set(ids)

        async def deleted(cid: str) -> None:
            await leases.release(cid)
            if await self._backend.exists(keys.cluster_deleted(cid)):
                await registry.drop(cid)
            elif registry.running(cid) is not None:
                log.warn(
                    "Channel {channel_id} vanished from Redis without being "
                    "deleted: stopped here, its queues kept",
                    channel_id=cid,
                )
                await registry.drop(cid, delete_queues=False)

        async def catch_up(cid: str) -> None:
            channel = registry.running(cid)
            if channel is None:
                await registry.follow(cid)
            elif channel.revision != revisions[cid]:
                await registry.refresh(cid)

        here = set(registry.running_ids()) | set(leases.held())
        await _each(sorted(here - stored), deleted)
        await _each(ids, catch_up)
        await self._fence(owners)
        current = {
            cid: (owner.process if owner is not None else None)
            for cid, owner in owners.items()
        }
        plan = plan_for(self.me, live, ids, current)

        async def release(cid: str) -> None:
            await self.hand_over(cid, live, ids, current)

        async def take(cid: str) -> None:
            if await leases.acquire(cid):
                await registry.take(cid)

        await _each(plan.release, release)
        await _each(plan.acquire, take)
        await self.membership.heartbeat_if_changed()
        if self.routers is not None:
            await self.routers.reconcile()

    async def _fence(self, owners: dict[str, Owner | None]) -> None:
        """Stop transports running here without a lease of this process."""
        leases = self.leases
        disputed = False
        for cid in self.registry.owned_ids():
            if not leases.holds(cid):
                leases.forget(cid)
                await self.registry.give_up(cid)
            elif owners.get(cid) != Owner(self.me, leases.token(cid) or 0):
                disputed = True
        if disputed:
            # Read before a lease acquired since, or really lost: Redis
            # decides (a failed compare-and-expire calls on_lost).
            await leases.renew_all()

    async def hand_over(
        self,
        channel_id: str,
        live: list[str],
        ids: list[str],
        current: dict[str, str | None],
    ) -> None:
        """Stop the transport, release the lease, tell the next owner (the
        one placement picks among ``live``)."""
        await self.registry.give_up(channel_id)
        await self.leases.release(channel_id)
        target = assign(live, ids, {**current, channel_id: None}).get(channel_id)
        if target == self.me:
            return
        try:
            await self.handed_over(channel_id, target)
        except Exception:
            log.failure("Could not tell {process} to take a channel", process=target)


async def _each(
    channel_ids: Iterable[str], work: Callable[[str], Awaitable[None]]
) -> None:
    """Run ``work`` for every channel, :data:`CONCURRENCY` at a time; one
    that fails is logged and does not stop the others."""
    # CONCURRENCY workers share one iterator (not a semaphore over a
    # Deferred per channel: thousands of works that finish at once would
    # release it recursively, past Python's recursion limit).
    pending = iter(channel_ids)

    async def worker() -> None:
        for channel_id in pending:
            try:
                await work(channel_id)
            except Exception:
                log.failure(
                    "Reconciling channel {channel_id} failed", channel_id=channel_id
                )

    await gatherResults([ensureDeferred(worker()) for _ in range(CONCURRENCY)])
