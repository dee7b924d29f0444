"""Which AMQP channel of a connection a RabbitMQ consumer runs on.

A connection carries at most ``channel_max`` channels (RabbitMQ's default is
2,047).  A consumer gets a channel of its own while numbers last, so a channel
error or the broker's flow control touches that consumer only.  Once all but
:func:`reserved` numbers are taken, new consumers share the consumer channels
already open, in turn (a cursor goes round them, so picking one costs the
same with thousands open): the number of consumers on one connection has no
cap.  ``basic.qos`` is asked for with each ``basic.consume``, back to
back (the channel writes them in that order, one at a time, so nothing comes
between them): a consumer keeps its own prefetch on a shared channel.

While every number is taken and no channel is open to others yet (right
after a reconnect, when all consumers attach at once), a consumer waits for
the first one to be.

The reserved numbers are for the publish channel and the short-lived channels
of declarations, drains and peeks; :meth:`ConsumerChannels.short_lived` runs
at most ``reserved - 1`` of those at once, so they never run out of numbers
either.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import attrs
from twisted.internet.defer import Deferred, DeferredSemaphore, ensureDeferred

from junebug.amqp.client import AmqpChannel, AmqpClient

__all__ = ["ConsumerChannels", "SharedChannel", "reserved"]

T = TypeVar("T")

#: Channel numbers kept free for everything but consumers (at most).
RESERVED_CHANNELS = 8


def reserved(channel_max: int) -> int:
    """Numbers kept for the publish and short-lived channels: 8, or a
    quarter of a small ``channel_max`` (at least 2)."""
    return max(2, min(RESERVED_CHANNELS, channel_max // 4))


@attrs.define(eq=False)
class SharedChannel:
    """A consumer channel and how many consumers use it."""

    channel: AmqpChannel
    users: int = 0
    #: Other consumers may join it (its first consumer is set up).
    open_to_others: bool = False
    #: In :attr:`ConsumerChannels._shareable`.
    listed: bool = False


class ConsumerChannels:
    """The consumer channels of one connection."""

    def __init__(
        self,
        client: AmqpClient,
        open_channel: Callable[[], Awaitable[AmqpChannel]],
    ) -> None:
        self._client = client
        self._open_channel = open_channel
        #: Channels other consumers may join (their first consumer is set up).
        self._shareable: list[SharedChannel] = []
        #: Where the next consumer to share looks first in ``_shareable``.
        self._cursor = 0
        #: New channels whose first consumer is still being set up.
        self._setting_up = 0
        self._waiters: list[Deferred[None]] = []
        self._short_lived = DeferredSemaphore(max(1, reserved(client.channel_max) - 1))

    def _has_spare_number(self) -> bool:
        client = self._client
        return client.open_channels < client.channel_max - reserved(client.channel_max)

    async def acquire(self) -> tuple[SharedChannel, bool]:
        """A channel for one more consumer, and whether it is a new one (then
        only this consumer uses it until :meth:`share` is called)."""
        while True:
            if not self._has_spare_number():
                shared = self._next_shareable()
                if shared is not None:
                    shared.users += 1
                    return shared, False
            if self._has_spare_number() or not self._setting_up:
                break
            waiter: Deferred[None] = Deferred()
            self._waiters.append(waiter)
            await waiter
        self._setting_up += 1
        try:
            channel = await self._open_channel()
        except BaseException:
            self._setting_up -= 1
            self._wake()
            raise
        return SharedChannel(channel, users=1), True

    def _next_shareable(self) -> SharedChannel | None:
        """The next open shareable channel after the cursor (closed ones met
        on the way are dropped)."""
        shareable = self._shareable
        while shareable:
            self._cursor %= len(shareable)
            shared = shareable[self._cursor]
            if shared.channel.is_open:
                self._cursor += 1
                return shared
            shared.listed = False
            del shareable[self._cursor]
        return None

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.callback(None)

    def _set_up(self, shared: SharedChannel) -> None:
        if not shared.open_to_others:
            shared.open_to_others = True
            self._setting_up -= 1
            self._wake()

    def share(self, shared: SharedChannel) -> None:
        """Let later consumers join ``shared``."""
        self._set_up(shared)
        if shared.channel.is_open and not shared.listed:
            shared.listed = True
            self._shareable.append(shared)

    def release(self, shared: SharedChannel) -> Deferred[Any] | None:
        """One consumer left ``shared``; the last one closes it (the returned
        Deferred fires once it is closed)."""
        shared.users -= 1
        if shared.users > 0:
            return None
        self._set_up(shared)  # if it was not yet, it will not be now
        if shared.listed:
            shared.listed = False
            self._shareable.remove(shared)
        self._wake()
        if not shared.channel.is_open:
            return None
        closed: Deferred[Any] = shared.channel.close()
        return closed

    async def short_lived(self, use: Callable[[], Awaitable[T]]) -> T:
        """Run ``use`` (which opens and closes its own channel) when fewer
        than ``reserved - 1`` others are running."""
        result: T = await self._short_lived.run(lambda: ensureDeferred(_await(use)))
        return result


async def _await(use: Callable[[], Awaitable[T]]) -> T:
    return await use()
