"""Several cluster members in one test process, on shared in-memory backends.

Each :class:`Member` is a channel registry with its own
:class:`~junebug.cluster.node.ClusterNode`, all on one
:class:`~junebug.stores.memory.MemoryBackend` and one
:class:`~junebug.amqp.memory.MemoryBroker` driven by a ``task.Clock``: a
whole gateway whose time the test moves.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
from twisted.internet.task import Clock

from junebug.amqp.memory import MemoryBroker
from junebug.channels.registry import ChannelRegistry
from junebug.channels.service import ChannelDependencies
from junebug.cluster.node import ClusterNode
from junebug.config import ClusterConfig
from junebug.plugins.host import PluginHost
from junebug.stores.channels import ChannelStore
from junebug.stores.memory import MemoryBackend
from junebug.stores.messages import MessageStore
from junebug.stores.rates import RateStore
from junebug.stores.status import StatusStore
from junebug.transports.registry import TransportRegistry

FAKE = {"fake": "junebug.testing.transports.FakeTransport"}


@attrs.define(eq=False)
class Member:
    node: ClusterNode
    registry: ChannelRegistry

    @property
    def id(self) -> str:
        return self.node.id

    def transports(self) -> set[str]:
        """Channels whose transport runs here."""
        return {
            cid
            for cid in self.registry.running_ids()
            if (channel := self.registry.running(cid)) is not None
            and channel.transport is not None
        }

    def transport(self, channel_id: str) -> Any:
        channel = self.registry.running(channel_id)
        return None if channel is None else channel.transport


@attrs.define(eq=False)
class Gateway:
    """Members sharing one clock, store and broker."""

    clock: Clock = attrs.field(factory=Clock)
    config: ClusterConfig = attrs.field(factory=ClusterConfig)
    backend: MemoryBackend = attrs.field(init=False)
    broker: MemoryBroker = attrs.field(init=False)
    members: list[Member] = attrs.field(factory=list)

    def __attrs_post_init__(self) -> None:
        self.backend = MemoryBackend(self.clock)
        self.broker = MemoryBroker(self.clock)

    def member(self, monotonic: Callable[[], float] | None = None) -> Member:
        """A new member, built but not started; its leases' deadlines are
        measured with ``monotonic`` (default: the clock)."""
        backend = self.backend
        deps = ChannelDependencies(
            reactor=self.clock,  # type: ignore[arg-type]
            broker=self.broker,
            backend=backend,
            messages=MessageStore(backend, 60, 60),
            statuses=StatusStore(backend),
            rates=RateStore(backend, self.clock, 60),
            http=None,  # type: ignore[arg-type]
            transports=TransportRegistry(FAKE),
        )
        node = ClusterNode(
            backend, self.clock, self.config, monotonic=monotonic or self.clock.seconds
        )
        registry = ChannelRegistry(
            ChannelStore(backend), deps, PluginHost([]), node.ownership
        )
        node.attach(registry)
        member = Member(node, registry)
        self.members.append(member)
        return member

    async def start(self) -> Member:
        """A new member, started (its stored channels and its share)."""
        member = self.member()
        await member.registry.start_all()
        await member.node.start()
        return member

    async def stop(self, member: Member) -> None:
        """A clean stop: hand over, then stop."""
        await member.node.leave()
        await member.registry.stop_all()
        self.members.remove(member)

    async def kill(self, member: Member) -> None:
        """Die without a word: loops stop, transports go, leases stay."""
        member.node.reconciler.stop()
        member.node.leases.stop()
        member.node.membership.left = True  # no more heartbeats
        await member.registry.stop_all()
        self.members.remove(member)

    async def tick(self, seconds: float = 1.0, step: float = 0.25) -> None:
        """Let ``seconds`` pass, in steps, for every member's loops."""
        elapsed = 0.0
        while elapsed < seconds:
            self.clock.advance(step)
            elapsed += step
            for member in self.members:
                await member.node.reconciler.reconcile()

    async def stop_all(self) -> None:
        for member in list(self.members):
            await self.stop(member)

    def placement(self) -> dict[str, list[str]]:
        """Which member runs each channel's transport."""
        where: dict[str, list[str]] = {}
        for member in self.members:
            for cid in member.transports():
                where.setdefault(cid, []).append(member.id)
        return where
