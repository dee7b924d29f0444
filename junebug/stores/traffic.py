"""What the API decided about a channel's queued MT: paused, cancelled.

``<cid>:traffic`` is a hash: field ``paused`` (``"1"`` while paused) and one
field ``cancel_before:<priority>`` per priority a "cancel all" was asked for,
holding a vumi timestamp: MT of that priority stamped before it are cancelled
when they come out of their queue.  It has no expiry and goes with its channel.
Whichever process runs the channel's transport reads it (see
:mod:`junebug.channels.traffic`), so a pause holds across processes and
restarts.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import attrs

from junebug.messages import format_timestamp, parse_timestamp
from junebug.stores import keys
from junebug.stores.backend import KeyValueBackend

PAUSED_FIELD = "paused"
_CANCEL_PREFIX = "cancel_before:"


@attrs.frozen
class TrafficState:
    """A channel's pause flag and its "cancel queued MT before" times."""

    paused: bool = False
    cancel_before: dict[int, datetime] = attrs.field(factory=dict)

    def cancels(self, priority: int, timestamp: object) -> bool:
        """Whether an MT of ``priority`` stamped ``timestamp`` is cancelled."""
        cutoff = self.cancel_before.get(priority)
        if cutoff is None or not isinstance(timestamp, str):
            return False
        try:
            return parse_timestamp(timestamp) < cutoff
        except ValueError:
            return False


class TrafficStore:
    """The ``<cid>:traffic`` records."""

    def __init__(self, backend: KeyValueBackend) -> None:
        self._backend = backend

    async def load(self, channel_id: str) -> TrafficState:
        fields = await self._backend.hgetall(keys.channel_traffic(channel_id))
        cutoffs: dict[int, datetime] = {}
        for name, value in fields.items():
            if not name.startswith(_CANCEL_PREFIX):
                continue
            try:
                cutoffs[int(name[len(_CANCEL_PREFIX) :])] = parse_timestamp(value)
            except ValueError:
                continue
        return TrafficState(
            paused=fields.get(PAUSED_FIELD) == "1", cancel_before=cutoffs
        )

    async def set_paused(self, channel_id: str, paused: bool) -> None:
        key = keys.channel_traffic(channel_id)
        if paused:
            await self._backend.hset(key, {PAUSED_FIELD: "1"})
        else:
            await self._backend.hdel(key, PAUSED_FIELD)

    async def cancel_before(
        self, channel_id: str, priorities: Iterable[int], cutoff: datetime
    ) -> TrafficState:
        """Cancel the MT of ``priorities`` stamped before ``cutoff`` (a later
        cutoff already recorded is kept); returns the state now recorded."""
        state = await self.load(channel_id)
        fields = {
            f"{_CANCEL_PREFIX}{priority}": format_timestamp(cutoff)
            for priority in priorities
            if priority not in state.cancel_before
            or cutoff > state.cancel_before[priority]
        }
        await self._backend.hset(keys.channel_traffic(channel_id), fields)
        return await self.load(channel_id)

    async def delete(self, channel_id: str) -> None:
        await self._backend.delete(keys.channel_traffic(channel_id))
