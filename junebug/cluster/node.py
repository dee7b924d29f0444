"""This process as a member of the gateway: its identity, leases, loops.

:class:`ClusterNode` is built before the channel registry (which asks its
:attr:`~ClusterNode.ownership`) and attached to it afterwards; Junebug
starts it once the stored channels are started (forwarding only) and stops
it, handing its channels over, before the channels stop.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from junebug.channels.registry import ChannelRegistry
from junebug.cluster.leases import Leases, Owner
from junebug.cluster.members import Identity, Membership, ProcessInfo
from junebug.cluster.ownership import ClusterOwnership
from junebug.cluster.reconciler import HandedOver, Reconciler
from junebug.config import ClusterConfig
from junebug.stores import keys
from junebug.stores.backend import KeyValueBackend

log = Logger()


class ClusterNode:
    """One process's part in the gateway."""

    def __init__(
        self,
        backend: KeyValueBackend,
        clock: IReactorTime,
        config: ClusterConfig,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        identity: Identity | None = None,
    ) -> None:
        self._backend = backend
        self._clock = clock
        self.config = config
        self.identity = identity or Identity.new(clock)
        self.leases = Leases(
            backend,
            clock,
            self.identity.id,
            config.lease_seconds,
            monotonic=monotonic,
        )
        self.ownership = ClusterOwnership(backend, self.leases)
        self.membership = Membership(
            backend, clock, self.identity, config.lease_seconds, self.leases.held
        )
        self._reconciler: Reconciler | None = None
        self.started = False

    @property
    def id(self) -> str:
        return self.identity.id

    def attach(
        self, registry: ChannelRegistry, handed_over: HandedOver | None = None
    ) -> Reconciler:
        """Make the reconciler for ``registry`` (built with :attr:`ownership`)."""
        reconciler = Reconciler(
            registry=registry,
            backend=self._backend,
            membership=self.membership,
            leases=self.leases,
            clock=self._clock,
            interval=self.config.reconcile_interval,
        )
        if handed_over is not None:
            reconciler.handed_over = handed_over
        self._reconciler = reconciler
        return reconciler

    @property
    def reconciler(self) -> Reconciler:
        if self._reconciler is None:
            raise RuntimeError("ClusterNode.attach() first")
        return self._reconciler

    async def start(self) -> None:
        self.started = True
        await self.reconciler.start()

    async def leave(self) -> None:
        """A clean stop: leave the membership, then hand over every channel
        this process owns to the process placement picks without it."""
        reconciler = self.reconciler
        reconciler.stop()
        if not self.started:
            return
        self.started = False
        await reconciler.reconcile()  # wait for a pass under way
        try:
            await self.membership.leave()
            others = [info.id for info in await self.membership.live()]
            ids = await reconciler.registry.store.list_ids()
            owners = await self.leases.owners(ids)
        except Exception as exc:
            log.warn(
                "Could not hand over cleanly ({error}): the leases expire instead",
                error=exc,
            )
            self.leases.stop()
            return
        current = {
            cid: (owner.process if owner is not None else None)
            for cid, owner in owners.items()
        }
        for cid in self.leases.held():
            await reconciler.hand_over(cid, others, ids, current)
        self.leases.stop()

    async def processes(self) -> list[ProcessInfo]:
        """The live processes (``GET /processes/``)."""
        return await self.membership.live()

    async def owner_view(self, channel_id: str) -> dict[str, Any] | None:
        """Which process runs the channel's transport, or ``None``."""
        owner = Owner.parse(await self._backend.get(keys.cluster_owner(channel_id)))
        if owner is None:
            return None
        info = None
        raw = await self._backend.get(keys.cluster_process(owner.process))
        if raw is not None:
            info = ProcessInfo.parse(raw)
        return {
            "process": owner.process,
            "host": None if info is None else info.host,
            "pid": None if info is None else info.pid,
            "token": owner.token,
        }
