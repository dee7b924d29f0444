"""Channel properties, persisted so channels start again when ``jb`` starts."""

from __future__ import annotations

import json
from typing import Any

from junebug.stores import keys
from junebug.stores.backend import KeyValueBackend


class ChannelStore:
    """``channels`` (set of ids) and ``<id>:properties`` (JSON)."""

    def __init__(self, backend: KeyValueBackend) -> None:
        self._backend = backend

    async def save(self, channel_id: str, properties: dict[str, Any]) -> None:
        await self._backend.set(
            keys.channel_properties(channel_id), json.dumps(properties)
        )
        await self._backend.sadd(keys.CHANNELS, channel_id)

    async def load(self, channel_id: str) -> dict[str, Any] | None:
        raw = await self._backend.get(keys.channel_properties(channel_id))
        if raw is None:
            return None
        value: dict[str, Any] = json.loads(raw)
        return value

    async def delete(self, channel_id: str) -> None:
        await self._backend.delete(keys.channel_properties(channel_id))
        await self._backend.srem(keys.CHANNELS, channel_id)

    async def list_ids(self) -> list[str]:
        return sorted(await self._backend.smembers(keys.CHANNELS))
