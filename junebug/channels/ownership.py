"""Whether this process runs a channel's transport: the registry's view.

:class:`ChannelRegistry` asks an :class:`Ownership` before it starts a
channel's transport and tells it of every change, so that in a gateway of
many processes (:mod:`junebug.cluster`) each transport runs in exactly one of
them.  :class:`SoleOwnership` is the answer of a process that is alone: it
owns everything.
"""

from __future__ import annotations

from typing import Protocol


class Ownership(Protocol):
    """Decides which channels' transports run here."""

    def holds(self, channel_id: str) -> bool:
        """True while this process may hand messages to the transport."""

    async def claim(self, channel_id: str) -> bool:
        """Become the channel's owner unless another process is; True if
        this process owns it now."""

    async def release(self, channel_id: str) -> None:
        """Stop owning the channel (its transport is stopped)."""

    async def revision(self, channel_id: str) -> int:
        """How many changes the channel has had (read before its properties)."""

    async def changed(self, channel_id: str) -> int:
        """Record a change (or restart) of the channel; the new revision."""

    async def forget(self, channel_id: str) -> None:
        """The channel is deleted: drop its lease and counters."""


class SoleOwnership:
    """One process: it owns every channel."""

    def holds(self, channel_id: str) -> bool:
        return True

    async def claim(self, channel_id: str) -> bool:
        return True

    async def release(self, channel_id: str) -> None:
        return None

    async def revision(self, channel_id: str) -> int:
        return 0

    async def changed(self, channel_id: str) -> int:
        return 0

    async def forget(self, channel_id: str) -> None:
        return None
