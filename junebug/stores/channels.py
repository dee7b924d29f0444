"""Channel properties, persisted so channels start again when ``jb`` starts."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from junebug.stores import keys
from junebug.stores.backend import KeyValueBackend

if TYPE_CHECKING:
    from junebug.channels.properties import ChannelProperties


class ChannelStore:
    """``channels`` (set of ids) and ``<id>:properties`` (JSON)."""

    def __init__(self, backend: KeyValueBackend) -> None:
        self._backend = backend

    async def save(self, channel_id: str, properties: ChannelProperties) -> None:
        await self._backend.set(
            keys.channel_properties(channel_id), json.dumps(properties)
        )
        await self._backend.sadd(keys.CHANNELS, channel_id)

    async def load(self, channel_id: str) -> ChannelProperties | None:
        raw = await self._backend.get(keys.channel_properties(channel_id))
        if raw is None:
            return None
        value: ChannelProperties = json.loads(raw)
        return value

    async def delete(self, channel_id: str) -> None:
        await self._backend.delete(keys.channel_properties(channel_id))
        await self._backend.srem(keys.CHANNELS, channel_id)

    async def list_ids(self) -> list[str]:
        return sorted(await self._backend.smembers(keys.CHANNELS))
