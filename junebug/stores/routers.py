"""Router and destination configs, persisted so routers start again with ``jb``.

Keys (the original's): ``routers`` (set of router ids), ``routers:<rid>`` (JSON
router config incl. ``id``), ``routers:<rid>:destinations`` (set of destination
ids) and ``routers:<rid>:destinations:<did>`` (JSON destination config incl.
``id``).  Unlike the original, deleting a router deletes its destinations too.
"""

from __future__ import annotations

import json
from typing import Any

from junebug.stores import keys
from junebug.stores.backend import KeyValueBackend


def _parse(raw: str | None) -> dict[str, Any] | None:
    if raw is None:
        return None
    value: dict[str, Any] = json.loads(raw)
    return value


class RouterStore:
    """Router configs and their destinations' configs."""

    def __init__(self, backend: KeyValueBackend) -> None:
        self._backend = backend

    async def list_ids(self) -> list[str]:
        return sorted(await self._backend.smembers(keys.ROUTERS))

    async def save(self, config: dict[str, Any]) -> None:
        """Save a router config; its ``id`` names it."""
        router_id = config["id"]
        await self._backend.set(keys.router(router_id), json.dumps(config))
        await self._backend.sadd(keys.ROUTERS, router_id)

    async def load(self, router_id: str) -> dict[str, Any] | None:
        return _parse(await self._backend.get(keys.router(router_id)))

    async def delete(self, router_id: str) -> None:
        """Delete a router and every destination of it."""
        destination_ids = await self.list_destination_ids(router_id)
        await self._backend.delete(
            *(keys.router_destination(router_id, did) for did in destination_ids),
            keys.router_destinations(router_id),
            keys.router(router_id),
            keys.cluster_router_revision(router_id),
        )
        await self._backend.srem(keys.ROUTERS, router_id)

    async def changed(self, router_id: str) -> int:
        """Count a change of the router (or of one of its destinations), so
        the other processes of the gateway notice it; the new revision."""
        return await self._backend.incr(keys.cluster_router_revision(router_id))

    async def revisions(self, router_ids: list[str]) -> dict[str, int]:
        """Each router's revision (0 if never counted), in one round trip."""
        values = await self._backend.mget(
            *(keys.cluster_router_revision(rid) for rid in router_ids)
        )
        return {
            rid: int(value) if value is not None and value.isdigit() else 0
            for rid, value in zip(router_ids, values, strict=True)
        }

    async def list_destination_ids(self, router_id: str) -> list[str]:
        return sorted(await self._backend.smembers(keys.router_destinations(router_id)))

    async def save_destination(self, router_id: str, config: dict[str, Any]) -> None:
        """Save a destination config; its ``id`` names it."""
        destination_id = config["id"]
        await self._backend.set(
            keys.router_destination(router_id, destination_id), json.dumps(config)
        )
        await self._backend.sadd(keys.router_destinations(router_id), destination_id)

    async def load_destination(
        self, router_id: str, destination_id: str
    ) -> dict[str, Any] | None:
        return _parse(
            await self._backend.get(keys.router_destination(router_id, destination_id))
        )

    async def load_destinations(self, router_id: str) -> list[dict[str, Any]]:
        """Every destination of a router, ordered by id."""
        destinations = []
        for destination_id in await self.list_destination_ids(router_id):
            config = await self.load_destination(router_id, destination_id)
            if config is not None:
                destinations.append(config)
        return destinations

    async def delete_destination(self, router_id: str, destination_id: str) -> None:
        await self._backend.delete(keys.router_destination(router_id, destination_id))
        await self._backend.srem(keys.router_destinations(router_id), destination_id)
