"""Every router of this Junebug: types, CRUD, running instances, sending.

Router types come from :data:`DEFAULT_ROUTERS`, extended by the ``routers``
config (``--routers type:dotted.Class``) or replaced by it with
``replace_routers``.  Configs are validated by the router type before anything
is saved; any change to a router or one of its destinations restarts it.  On
start-up every stored router is started (after the channels).

All changes are serialised by one lock, so two requests can never both pass a
check that only one of them may pass (e.g. "only one router per channel").

As for channels, a change happens whole or not at all: it needs RabbitMQ
connected (else 503), and a failure half-way (Redis or RabbitMQ went away)
is undone before it is answered.  A stored router that cannot start because a
backend is away is started again once it is back.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, cast

from twisted.internet.defer import DeferredLock
from twisted.logger import Logger

from junebug.changes import require_broker, undo_quietly
from junebug.channels.queues import delete_owned_queues
from junebug.channels.sending import MessageSender
from junebug.errors import (
    BACKEND_AWAY,
    DestinationNotFound,
    InvalidRouterDestinationConfig,
    InvalidRouterType,
    RouterNotFound,
    refusal,
)
from junebug.http.url_templates import check_mo_url
from junebug.http.urls import check_callback_urls
from junebug.routers.interface import (
    DESTINATION_KEY,
    ROUTER_KEY,
    Router,
    RouterDependencies,
)
from junebug.start_retries import StartRetries
from junebug.transports.registry import load_dotted

DEFAULT_ROUTERS: Mapping[str, str] = {
    "from_address": "junebug.routers.from_address.FromAddressRouter",
}

#: The keys of a router a PUT replaces (the original's list).
ROUTER_KEYS = ("type", "label", "config", "metadata")


def _effective_limit(*limits: Any) -> int | None:
    known = [
        limit
        for limit in limits
        if isinstance(limit, int) and not isinstance(limit, bool)
    ]
    return min(known) if known else None


class RouterRegistry:
    """Maps router ids to running routers, backed by the router store."""

    log = Logger()

    def __init__(
        self,
        deps: RouterDependencies,
        sender: MessageSender,
        extra: Mapping[str, str] | None = None,
        replace: bool = False,
    ) -> None:
        self.deps = deps
        self.store = deps.store
        self.sender = sender
        paths = {} if replace else dict(DEFAULT_ROUTERS)
        paths.update(extra or {})
        self._paths = paths
        self._classes: dict[str, type[Router]] = {}
        self._routers: dict[str, Router] = {}
        #: The revision each running router was started from (junebug.cluster).
        self._revisions: dict[str, int] = {}
        self._lock = DeferredLock()
        self.retries = StartRetries(deps.reactor, self.log)

    # -- types -----------------------------------------------------------------

    def types(self) -> list[str]:
        return sorted(self._paths)

    def resolve(self, router_type: Any) -> type[Router]:
        """The class of a router type, or InvalidRouterType."""
        if not isinstance(router_type, str) or router_type not in self._paths:
            raise InvalidRouterType(
                f"Invalid router type {router_type}, must be one of: "
                + ", ".join(self.types())
            )
        if router_type not in self._classes:
            self._classes[router_type] = cast(
                type[Router], load_dotted(self._paths[router_type])
            )
        return self._classes[router_type]

    # -- look-ups --------------------------------------------------------------

    def running(self, router_id: str) -> Router | None:
        return self._routers.get(router_id)

    async def list_ids(self) -> list[str]:
        return await self.store.list_ids()

    async def get(self, router_id: str) -> dict[str, Any]:
        router = await self.store.load(router_id)
        if router is None:
            raise RouterNotFound(f"Router with ID {router_id} cannot be found")
        return router

    async def list_destination_ids(self, router_id: str) -> list[str]:
        await self.get(router_id)
        return await self.store.list_destination_ids(router_id)

    async def get_destination(
        self, router_id: str, destination_id: str
    ) -> dict[str, Any]:
        await self.get(router_id)
        destination = await self.store.load_destination(router_id, destination_id)
        if destination is None:
            raise DestinationNotFound(
                f"Cannot find destination with ID {destination_id} "
                f"for router {router_id}"
            )
        return destination

    async def destination_ids(self) -> list[str]:
        """Every destination id of every router (for ``/health``)."""
        ids: list[str] = []
        for router_id in await self.store.list_ids():
            ids.extend(await self.store.list_destination_ids(router_id))
        return ids

    # -- validation ------------------------------------------------------------

    async def _validate_router(
        self, router: dict[str, Any], router_id: str | None
    ) -> type[Router]:
        cls = self.resolve(router.get("type"))
        await cls.validate_router_config(
            self.deps, router.get("config") or {}, router_id
        )
        return cls

    async def _validate_destination(
        self,
        cls: type[Router],
        router_id: str,
        destination: dict[str, Any],
        destinations: Sequence[dict[str, Any]],
    ) -> None:
        others = [d for d in destinations if d["id"] != destination.get("id")]
        await cls.validate_destination_config(
            self.deps,
            destination.get("config") or {},
            router_id=router_id,
            others=others,
        )

    async def _validate_all_destinations(
        self,
        cls: type[Router],
        router_id: str,
        destinations: Sequence[dict[str, Any]],
    ) -> None:
        """Re-check every destination, when the router's type changes."""
        for destination in destinations:
            try:
                await self._validate_destination(
                    cls, router_id, destination, destinations
                )
            except InvalidRouterDestinationConfig as exc:
                raise InvalidRouterDestinationConfig(
                    f"Destination {destination['id']}: {exc}"
                ) from None

    # -- running ---------------------------------------------------------------

    async def _start(
        self, router: dict[str, Any], destinations: Sequence[dict[str, Any]]
    ) -> Router:
        """Start a router.  If a backend is away the error propagates and
        nothing of it is left; any other failure leaves it registered,
        stopped, with its ``start_error``."""
        cls = self.resolve(router.get("type"))
        instance = cls(router, destinations, self.deps)
        self._routers[instance.id] = instance
        try:
            await instance.start()
        except Exception as exc:
            await instance.stop()
            if isinstance(exc, BACKEND_AWAY):
                if self._routers.get(instance.id) is instance:
                    del self._routers[instance.id]
                raise
            instance.start_error = f"{type(exc).__name__}: {exc}"
            instance.log.failure(
                "Router {router_id} failed to start", router_id=instance.id
            )
        self.retries.discard(instance.id)
        return instance

    def _retry_later(self, router_id: str, error: Exception) -> None:
        self.log.warn(
            "Router {router_id} cannot start ({error}); retrying later",
            router_id=router_id,
            error=error,
        )
        self.retries.add(router_id, lambda: self._retry_start(router_id))

    async def _retry_start(self, router_id: str) -> None:
        async with self._lock:
            if router_id in self._routers:
                return
            router = await self.store.load(router_id)
            if router is not None:
                destinations = await self.store.load_destinations(router_id)
                await self._start(router, destinations)

    async def _undo_restart(
        self, router: dict[str, Any], destinations: Sequence[dict[str, Any]]
    ) -> None:
        """Run ``router`` as it was again, or once the backends are back."""
        await self._stop(router["id"])
        try:
            await self._start(router, destinations)
        except BACKEND_AWAY as exc:
            self._retry_later(router["id"], exc)

    async def _stop(self, router_id: str) -> None:
        instance = self._routers.pop(router_id, None)
        if instance is not None:
            await instance.stop()

    async def _restart(
        self, router: dict[str, Any], destinations: Sequence[dict[str, Any]]
    ) -> None:
        await self._stop(router["id"])
        await self._start(router, destinations)

    async def start_all(self) -> None:
        """Start every stored router; one that fails never stops the others."""
        for router_id in await self.store.list_ids():
            try:
                revisions = await self.store.revisions([router_id])
                self._revisions[router_id] = revisions[router_id]
                router = await self.store.load(router_id)
                if router is None:
                    continue
                destinations = await self.store.load_destinations(router_id)
                await self._start(router, destinations)
            except BACKEND_AWAY as exc:
                self._retry_later(router_id, exc)
            except Exception:
                self.log.failure(
                    "Could not start router {router_id}", router_id=router_id
                )

    async def stop_all(self) -> None:
        self.retries.stop()
        for router_id in list(self._routers):
            await self._stop(router_id)

    async def _changed(self, router_id: str) -> None:
        """Count a change that took effect here, for the other processes."""
        try:
            self._revisions[router_id] = await self.store.changed(router_id)
        except Exception as exc:
            self.log.warn(
                "Router {router_id} changed, but the other processes will not "
                "notice before they restart: {error}",
                router_id=router_id,
                error=exc,
            )

    async def reconcile(self) -> None:
        """Catch up with changes made through other processes of the
        gateway: start new routers, restart changed ones, stop deleted ones
        (their queues were deleted by the process that deleted them).
        Every process runs every router: they only consume queues."""
        ids = await self.store.list_ids()
        revisions = await self.store.revisions(ids)
        async with self._lock:
            for router_id in list(self._routers):
                if router_id not in revisions:
                    await self._stop(router_id)
                    self._revisions.pop(router_id, None)
            pending = set(self.retries.pending())
            for router_id, revision in revisions.items():
                running = router_id in self._routers
                if router_id in pending or (
                    running and self._revisions.get(router_id) == revision
                ):
                    continue
                router = await self.store.load(router_id)
                if router is None:
                    continue
                destinations = await self.store.load_destinations(router_id)
                self._revisions[router_id] = revision
                await self._stop(router_id)
                try:
                    await self._start(router, destinations)
                except BACKEND_AWAY as exc:
                    self._retry_later(router_id, exc)

    # -- routers ---------------------------------------------------------------

    async def create(self, body: dict[str, Any]) -> dict[str, Any]:
        """Store and start a router; on any failure nothing stays stored."""
        async with self._lock:
            await self._validate_router(body, None)
            require_broker(self.deps.broker, "Router not created")
            router = {**body, "id": str(uuid.uuid4())}
            try:
                await self.store.save(router)
                await self._start(router, [])
            except Exception as exc:
                await undo_quietly(
                    self.log, "undo a router", self.store.delete(router["id"])
                )
                raise refusal(exc, "Router not created") from exc
            await self._changed(router["id"])
            return router

    async def _update(
        self, router_id: str, old: dict[str, Any], router: dict[str, Any]
    ) -> dict[str, Any]:
        what = "Router not updated"
        cls = await self._validate_router(router, router_id)
        destinations = await self.store.load_destinations(router_id)
        if router.get("type") != old.get("type"):
            await self._validate_all_destinations(cls, router_id, destinations)
        require_broker(self.deps.broker, what)
        try:
            await self.store.save(router)
        except Exception as exc:
            await undo_quietly(self.log, "undo a router change", self.store.save(old))
            raise refusal(exc, what) from exc
        try:
            await self._restart(router, destinations)
        except Exception as exc:
            await undo_quietly(self.log, "undo a router change", self.store.save(old))
            await self._undo_restart(old, destinations)
            raise refusal(exc, what) from exc
        await self._changed(router_id)
        return router

    async def replace(self, router_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """PUT: ``type``, ``label``, ``config``, ``metadata`` become the body's."""
        async with self._lock:
            old = await self.get(router_id)
            kept = {k: v for k, v in old.items() if k not in ROUTER_KEYS}
            return await self._update(router_id, old, {**kept, **body, "id": router_id})

    async def patch(self, router_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """PATCH: shallow merge (a given ``config`` replaces the whole config)."""
        async with self._lock:
            old = await self.get(router_id)
            return await self._update(router_id, old, {**old, **body, "id": router_id})

    async def delete(self, router_id: str) -> None:
        """Delete a router with its destinations (from the store first: it
        stays if that fails), stop it and delete their queues."""
        async with self._lock:
            await self.get(router_id)
            destination_ids = await self.store.list_destination_ids(router_id)
            try:
                await self.store.delete(router_id)
            except Exception as exc:
                raise refusal(exc, "Router not deleted") from exc
            self.retries.discard(router_id)
            await self._stop(router_id)
            self._revisions.pop(router_id, None)
            for destination_id in destination_ids:
                await self._delete_queues(destination_id)
            for owner_id in (router_id, *destination_ids):
                await self._forget_logs(owner_id)

    async def _forget_logs(self, owner_id: str) -> None:
        stored = self.deps.stored_logs
        if stored is not None:
            await undo_quietly(self.log, "delete stored logs", stored.forget(owner_id))

    async def _delete_queues(self, destination_id: str) -> None:
        await delete_owned_queues(
            self.deps.broker, destination_id, with_status=False, log=self.log
        )

    # -- destinations ----------------------------------------------------------

    async def create_destination(
        self, router_id: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        async with self._lock:
            router = await self.get(router_id)
            cls = self.resolve(router.get("type"))
            destinations = await self.store.load_destinations(router_id)
            destination = {**body, "id": str(uuid.uuid4())}
            check_callback_urls(destination, ("mo_url",))
            check_mo_url("mo_url", body.get("mo_url"))
            await self._validate_destination(cls, router_id, destination, destinations)
            what = "Destination not created"
            require_broker(self.deps.broker, what)
            await self._change_destinations(
                router_id,
                router,
                destinations,
                [*destinations, destination],
                change=lambda: self.store.save_destination(router_id, destination),
                undo=lambda: self.store.delete_destination(
                    router_id, destination["id"]
                ),
                undoing="undo a destination",
                what=what,
            )
            return destination

    async def _change_destinations(
        self,
        router_id: str,
        router: dict[str, Any],
        destinations: list[dict[str, Any]],
        now: list[dict[str, Any]],
        *,
        change: Callable[[], Awaitable[object]],
        undo: Callable[[], Awaitable[object]],
        undoing: str,
        what: str,
    ) -> None:
        """Store a destination change (``change``) and restart the router
        with the destinations ``now``; on any failure undo the store and run
        the router with ``destinations`` again, then refuse with ``what``."""
        try:
            await change()
            await self._restart(router, now)
        except Exception as exc:
            await undo_quietly(self.log, undoing, undo())
            await self._undo_restart(router, destinations)
            raise refusal(exc, what) from exc
        await self._changed(router_id)

    async def _update_destination(
        self,
        router_id: str,
        destination_id: str,
        body: dict[str, Any],
        *,
        merge: bool,
    ) -> dict[str, Any]:
        router = await self.get(router_id)
        old = await self.get_destination(router_id, destination_id)
        cls = self.resolve(router.get("type"))
        destinations = await self.store.load_destinations(router_id)
        base = old if merge else {}
        destination = {**base, **body, "id": destination_id}
        check_callback_urls(destination, ("mo_url",))
        check_mo_url("mo_url", body.get("mo_url"))
        if not merge or "config" in body:
            await self._validate_destination(cls, router_id, destination, destinations)
        what = "Destination not updated"
        require_broker(self.deps.broker, what)
        updated = [
            destination if d["id"] == destination_id else d for d in destinations
        ]
        await self._change_destinations(
            router_id,
            router,
            destinations,
            updated,
            change=lambda: self.store.save_destination(router_id, destination),
            undo=lambda: self.store.save_destination(router_id, old),
            undoing="undo a destination change",
            what=what,
        )
        return destination

    async def replace_destination(
        self, router_id: str, destination_id: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        """PUT: the destination becomes the body (plus its ``id``)."""
        async with self._lock:
            return await self._update_destination(
                router_id, destination_id, body, merge=False
            )

    async def patch_destination(
        self, router_id: str, destination_id: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        """PATCH: shallow merge; ``config`` is validated only when given."""
        async with self._lock:
            return await self._update_destination(
                router_id, destination_id, body, merge=True
            )

    async def delete_destination(self, router_id: str, destination_id: str) -> None:
        what = "Destination not deleted"
        async with self._lock:
            router = await self.get(router_id)
            old = await self.get_destination(router_id, destination_id)
            destinations = await self.store.load_destinations(router_id)
            require_broker(self.deps.broker, what)
            remaining = [d for d in destinations if d["id"] != destination_id]
            await self._change_destinations(
                router_id,
                router,
                destinations,
                remaining,
                change=lambda: self.store.delete_destination(router_id, destination_id),
                undo=lambda: self.store.save_destination(router_id, old),
                undoing="undo a destination deletion",
                what=what,
            )
            await self._delete_queues(destination_id)
            await self._forget_logs(destination_id)

    # -- sending ---------------------------------------------------------------

    async def send(
        self,
        router_id: str,
        destination_id: str,
        body: dict[str, Any],
        record_extras: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Send an MT message from a destination on the channel serving it.

        ``record_extras`` are added to the outbound record (a dialect's
        delivery report settings).

        The channel needs no ``mo_url``/``amqp_queue``; both the channel's and
        the destination's ``character_limit`` apply.  The outbound record
        (with ``event_url``) is stored under the channel and the destination,
        marked with the destination, before the message is published.
        """
        router = await self.get(router_id)
        destination = await self.get_destination(router_id, destination_id)
        instance = self._routers.get(router_id)
        if instance is None:
            cls = self.resolve(router.get("type"))
            instance = cls(
                router, await self.store.load_destinations(router_id), self.deps
            )
        channel_id = instance.get_destination_channel(destination_id, body)
        properties = await self.deps.channels.get_properties(channel_id)
        limited = {
            **properties,
            "character_limit": _effective_limit(
                properties.get("character_limit"),
                destination.get("character_limit"),
            ),
        }
        return await self.sender.send(
            channel_id,
            limited,
            body,
            require_destination=False,
            inbound_owners=(destination_id,),
            record_owners=(destination_id,),
            record_extras={
                **(record_extras or {}),
                DESTINATION_KEY: destination_id,
                ROUTER_KEY: router_id,
            },
        )
