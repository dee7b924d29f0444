"""The latest status event of each component of a channel (``<id>:status``)."""

from __future__ import annotations

from junebug.messages import AnyMessage, Message, from_json, to_json
from junebug.stores import keys
from junebug.stores.backend import KeyValueBackend


class StatusStore:
    """One hash per channel: component name -> latest vumi status JSON."""

    def __init__(self, backend: KeyValueBackend) -> None:
        self._backend = backend

    async def save(self, channel_id: str, status: AnyMessage) -> None:
        await self._backend.hset(
            keys.channel_status(channel_id),
            {str(status["component"]): to_json(status).decode()},
        )

    async def load(self, channel_id: str) -> dict[str, Message]:
        fields = await self._backend.hgetall(keys.channel_status(channel_id))
        return {k: from_json(v) for k, v in fields.items()}

    async def clear(self, channel_id: str, component: str) -> None:
        await self._backend.hdel(keys.channel_status(channel_id), component)

    async def delete(self, channel_id: str) -> None:
        await self._backend.delete(keys.channel_status(channel_id))
