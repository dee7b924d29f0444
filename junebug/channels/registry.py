"""Every channel of this Junebug: create, update, restart, delete, look up.

Properties are persisted in the channel store before a channel starts, so a
crash never forgets an accepted channel; on start-up every stored channel is
started again.  Deleting a channel deletes its queues too.

A change either happens whole or not at all: creating, changing or restarting
a channel needs RabbitMQ connected (else :class:`AmqpConnectionError`, 503),
and if storing or starting fails half-way (Redis or RabbitMQ went away) what
was done is undone before the error is answered.  A stored channel that cannot
start because a backend is away (at start-up, or when a change is undone) is
started again once it is back (:class:`~junebug.start_retries.StartRetries`).
"""

from __future__ import annotations

import uuid
from typing import Any

from twisted.internet.defer import DeferredLock
from twisted.logger import Logger

from junebug.changes import require_broker, undo_quietly
from junebug.channels.ownership import Ownership, SoleOwnership
from junebug.channels.properties import (
    CALLBACK_URL_KEYS,
    ChannelProperties,
    as_channel_properties,
    needs_restart,
)
from junebug.channels.queues import delete_owned_queues, queue_length
from junebug.channels.rate_limit import RateLimit
from junebug.channels.service import Channel, ChannelDependencies
from junebug.channels.status import RATE_FIELDS, status_object
from junebug.errors import (
    BACKEND_AWAY,
    BrokerError,
    ChannelNotFound,
    InvalidChannelType,
    StoreUnavailable,
    refusal,
)
from junebug.http.url_templates import check_mo_url
from junebug.http.urls import check_callback_urls
from junebug.plugins.host import PluginHost
from junebug.start_retries import StartRetries
from junebug.stores.channels import ChannelStore


def _down(channel_id: str, component: str, message: str) -> dict[str, Any]:
    return {
        "channel_id": channel_id,
        "component": component,
        "status": "down",
        "type": "connection_lost",
        "message": message,
        "details": {},
    }


class ChannelRegistry:
    """Maps channel ids to running channels, backed by the channel store."""

    log = Logger()

    def __init__(
        self,
        store: ChannelStore,
        deps: ChannelDependencies,
        plugins: PluginHost,
        ownership: Ownership | None = None,
    ) -> None:
        self.store = store
        self.deps = deps
        self.plugins = plugins
        self.ownership: Ownership = ownership or SoleOwnership()
        self._channels: dict[str, Channel] = {}
        self._locks: dict[str, DeferredLock] = {}
        self.retries = StartRetries(deps.reactor, self.log)
        #: Channels whose last start here failed, with why.
        self.start_failures: dict[str, str] = {}

    def _lock(self, channel_id: str) -> DeferredLock:
        return self._locks.setdefault(channel_id, DeferredLock())

    def running(self, channel_id: str) -> Channel | None:
        return self._channels.get(channel_id)

    def running_ids(self) -> list[str]:
        return sorted(self._channels)

    def owned_ids(self) -> list[str]:
        """Channels whose transport runs (or failed to start) here."""
        return sorted(cid for cid, channel in self._channels.items() if channel.owned)

    async def unplaced_ids(self) -> list[str]:
        """Stored channels neither running here nor recorded as failed to
        start (``/health/ready`` waits for none to be left).  One waiting to
        be started again once a backend is back is not placed yet."""
        failed = set(self.start_failures).difference(self.retries.pending())
        placed = set(self._channels) | failed
        return [cid for cid in await self.store.list_ids() if cid not in placed]

    def validate(self, properties: ChannelProperties) -> None:
        """Raise the API error a channel's type, config or callback URLs deserve."""
        check_callback_urls(properties, CALLBACK_URL_KEYS)
        self.deps.transports.validate(properties.get("type"), properties.get("config"))

    def config_class(self, channel_type: Any) -> type[Any] | None:
        """The config class of a channel type, or ``None`` if it is unknown."""
        try:
            return self.deps.transports.resolve(channel_type).CONFIG_CLASS
        except InvalidChannelType:
            return None

    async def get_properties(self, channel_id: str) -> ChannelProperties:
        """A channel's properties: from the running channel, else the store."""
        channel = self._channels.get(channel_id)
        if channel is not None:
            return channel.properties.copy()
        properties = await self.store.load(channel_id)
        if properties is None:
            raise ChannelNotFound("")
        return properties

    async def status_view(
        self, channel_id: str, properties: ChannelProperties
    ) -> dict[str, Any]:
        """Properties + ``id`` + ``status``, as create/get/update answer."""
        extra: dict[str, dict[str, Any]] = {}
        if not self.deps.broker.is_connected():
            extra["amqp"] = _down(
                channel_id, "amqp", "Lost connection to the message broker"
            )
        try:
            status = await status_object(
                channel_id, self.deps.statuses, self.deps.rates, extra
            )
        except StoreUnavailable as exc:
            # The running channel's properties are known; say what is wrong.
            extra["redis"] = _down(channel_id, "redis", f"Lost connection: {exc}")
            status = {
                "status": "down",
                "components": extra,
                **{field: 0 for field, _label in RATE_FIELDS},
            }
        else:
            status["queue"] = await self._queue_length(channel_id)
        limit = RateLimit.of(properties)
        if limit is not None:
            status["rate_limit"] = limit.view()
        return {**properties, "id": channel_id, "status": status}

    async def _queue_length(self, channel_id: str) -> dict[str, Any] | None:
        """``status.queue``; ``None`` while RabbitMQ or Redis is away."""
        deps = self.deps
        if not deps.broker.is_connected():
            return None
        try:
            return await queue_length(deps.broker, deps.rates, deps.traffic, channel_id)
        except (BrokerError, StoreUnavailable) as exc:
            self.log.warn(
                "No queue length for {channel_id}: {error}",
                channel_id=channel_id,
                error=exc,
            )
            return None

    async def pause(self, channel_id: str, paused: bool) -> None:
        """Pause (or resume) a channel's MT, here and in whichever process
        runs its transport (which reads the stored flag)."""
        async with self._lock(channel_id):
            await self.get_properties(channel_id)
            await self.deps.traffic.set_paused(channel_id, paused)
            channel = self._channels.get(channel_id)
            if channel is None:
                return
            channel.traffic.note(await self.deps.traffic.load(channel_id))
            if paused:
                await channel.pause()
            else:
                await channel.resume()

    async def ensure(self, definition: dict[str, Any]) -> str:
        """Create a channel from config unless its ``id`` is already stored."""
        fields = dict(definition)
        channel_id = fields.pop("id", None)
        if channel_id is not None and await self.store.load(str(channel_id)):
            return str(channel_id)
        return await self.create(as_channel_properties(fields), channel_id=channel_id)

    async def create(
        self, properties: ChannelProperties, channel_id: str | None = None
    ) -> str:
        """Store and start a channel; on any failure nothing stays stored."""
        self.validate(properties)
        check_mo_url("mo_url", properties.get("mo_url"))
        require_broker(self.deps.broker, "Channel not created")
        channel_id = channel_id or str(uuid.uuid4())
        async with self._lock(channel_id):
            try:
                await self.store.save(channel_id, properties)
                revision = await self.ownership.changed(channel_id)
                await self._start(channel_id, properties, revision=revision)
            except Exception as exc:
                await undo_quietly(
                    self.log, "undo a channel", self.store.delete(channel_id)
                )
                await undo_quietly(
                    self.log, "undo a lease", self.ownership.forget(channel_id)
                )
                await undo_quietly(
                    self.log, "undo a status", self.deps.statuses.delete(channel_id)
                )
                raise refusal(exc, "Channel not created") from exc
        return channel_id

    async def _start(
        self,
        channel_id: str,
        properties: ChannelProperties,
        *,
        revision: int = 0,
        transport: bool | None = None,
    ) -> Channel:
        """Start a channel (its transport too if this process owns it, or
        becomes its owner when ``transport`` is not given); if that fails,
        nothing of it is left running."""
        ownership = self.ownership
        if transport is None:
            transport = await ownership.claim(channel_id)
        channel = Channel(
            channel_id,
            properties,
            self.deps,
            may_send=lambda: ownership.holds(channel_id),
        )
        channel.revision = revision
        self._channels[channel_id] = channel
        try:
            if transport:
                await channel.start()
            else:
                await channel.start(with_transport=False)
        except BaseException as exc:
            if self._channels.get(channel_id) is channel:
                del self._channels[channel_id]
            await channel.stop()
            if isinstance(exc, Exception):
                self.start_failures[channel_id] = str(exc) or type(exc).__name__
            raise
        self.retries.discard(channel_id)
        self.start_failures.pop(channel_id, None)
        await self.plugins.channel_started(channel)
        return channel

    async def _start_or_retry(
        self, channel_id: str, properties: ChannelProperties, revision: int
    ) -> None:
        """Start; if a backend is away, start it again once it is back."""
        try:
            await self._start(channel_id, properties, revision=revision)
        except BACKEND_AWAY as exc:
            self._retry_later(channel_id, exc)

    def _retry_later(self, channel_id: str, error: Exception) -> None:
        self.log.warn(
            "Channel {channel_id} cannot start ({error}); retrying later",
            channel_id=channel_id,
            error=error,
        )
        self.retries.add(channel_id, lambda: self._retry_start(channel_id))

    async def _retry_start(self, channel_id: str) -> None:
        async with self._lock(channel_id):
            if channel_id in self._channels:
                return
            revision = await self.ownership.revision(channel_id)
            properties = await self.store.load(channel_id)
            if properties is not None:
                await self._start(channel_id, properties, revision=revision)

    async def _stop(self, channel_id: str) -> None:
        self.start_failures.pop(channel_id, None)
        channel = self._channels.pop(channel_id, None)
        if channel is None:
            return
        await channel.stop()
        await self.plugins.channel_stopped(channel)

    async def update(
        self, channel_id: str, changes: ChannelProperties
    ) -> ChannelProperties:
        """Store and apply ``changes``; on any failure the channel is left as
        it was (stored and running with its old properties)."""
        what = "Channel not updated"
        async with self._lock(channel_id):
            properties = await self.get_properties(channel_id)
            merged: ChannelProperties = {**properties, **changes}
            self.validate(merged)
            # Only a new URL: one stored before templates existed still works.
            check_mo_url("mo_url", changes.get("mo_url"))
            channel = self._channels.get(channel_id)
            restart = channel is None or needs_restart(changes)
            if restart:
                require_broker(self.deps.broker, what)
            try:
                await self.store.save(channel_id, merged)
                revision = await self.ownership.changed(channel_id)
            except Exception as exc:
                await undo_quietly(
                    self.log,
                    "undo a channel change",
                    self.store.save(channel_id, properties),
                )
                raise refusal(exc, what) from exc
            if channel is not None and not restart:
                channel.properties = merged
                channel.revision = revision
                return merged
            await self._stop(channel_id)
            try:
                await self._start(channel_id, merged, revision=revision)
            except Exception as exc:
                await undo_quietly(
                    self.log,
                    "undo a channel change",
                    self.store.save(channel_id, properties),
                )
                await self._start_or_retry(channel_id, properties, revision)
                raise refusal(exc, what) from exc
            return merged

    async def delete(self, channel_id: str) -> None:
        """Forget a channel, then stop it (it stays if it cannot be forgotten)."""
        async with self._lock(channel_id):
            properties = await self.get_properties(channel_id)
            try:
                await self.store.delete(channel_id)
            except Exception as exc:
                raise refusal(exc, "Channel not deleted") from exc
            self.retries.discard(channel_id)
            await self._stop(channel_id)
            await undo_quietly(
                self.log, "drop a channel lease", self.ownership.forget(channel_id)
            )
            self.deps.metrics.forget_channel(channel_id, str(properties.get("type")))
            await undo_quietly(
                self.log,
                "delete a channel status",
                self.deps.statuses.delete(channel_id),
            )
            await undo_quietly(
                self.log,
                "delete a channel's traffic state",
                self.deps.traffic.delete(channel_id),
            )
            if self.deps.stored_logs is not None:
                await undo_quietly(
                    self.log,
                    "delete the channel's stored logs",
                    self.deps.stored_logs.forget(channel_id),
                )
            await delete_owned_queues(
                self.deps.broker, channel_id, with_status=True, log=self.log
            )
        self._locks.pop(channel_id, None)

    async def restart(self, channel_id: str) -> None:
        """Stop and start a channel; if starting fails because a backend is
        away, it is started again once it is back."""
        async with self._lock(channel_id):
            properties = await self.get_properties(channel_id)
            require_broker(self.deps.broker, "Channel not restarted")
            try:
                revision = await self.ownership.changed(channel_id)
            except Exception as exc:
                raise refusal(exc, "Channel not restarted") from exc
            await self._stop(channel_id)
            try:
                await self._start(channel_id, properties, revision=revision)
            except Exception as exc:
                if isinstance(exc, BACKEND_AWAY):
                    self._retry_later(channel_id, exc)
                raise refusal(
                    exc, "Channel not restarted", "it starts once that is back"
                ) from exc

    async def start_all(self) -> None:
        """Start every stored channel; one that fails never stops the others,
        and one that fails because a backend is away is retried."""
        for channel_id in await self.store.list_ids():
            try:
                revision = await self.ownership.revision(channel_id)
                properties = await self.store.load(channel_id)
                if properties is not None:
                    await self._start(channel_id, properties, revision=revision)
            except BACKEND_AWAY as exc:
                self._retry_later(channel_id, exc)
            except Exception:
                self.log.failure(
                    "Could not start channel {channel_id}", channel_id=channel_id
                )

    async def stop_all(self) -> None:
        self.retries.stop()
        for channel_id in list(self._channels):
            await self._stop(channel_id)

    # -- what the cluster's reconciler does (junebug.cluster.reconciler) ----

    async def _load(self, channel_id: str) -> tuple[ChannelProperties | None, int]:
        revision = await self.ownership.revision(channel_id)
        return await self.store.load(channel_id), revision

    async def take(self, channel_id: str) -> None:
        """Run the transport of a channel whose lease this process just
        acquired (starting the channel here first if it was not)."""
        async with self._lock(channel_id):
            channel = self._channels.get(channel_id)
            if channel is None:
                properties, revision = await self._load(channel_id)
                if properties is not None:
                    await self._start(
                        channel_id, properties, revision=revision, transport=True
                    )
            elif not channel.owned:
                try:
                    await channel.start_transport()
                except BrokerError:
                    # Deleted through another process meanwhile (its queues
                    # went first): the next pass stops it here; otherwise a
                    # real failure.
                    if await self.store.load(channel_id) is not None:
                        raise
                    self.log.info(
                        "Channel {channel_id} was deleted as it was taken",
                        channel_id=channel_id,
                    )

    async def give_up(self, channel_id: str) -> None:
        """Stop the channel's transport here (forwarding goes on)."""
        async with self._lock(channel_id):
            channel = self._channels.get(channel_id)
            if channel is not None and channel.owned:
                await channel.stop_transport()

    async def follow(self, channel_id: str) -> None:
        """Forward for a channel another process created (no transport)."""
        async with self._lock(channel_id):
            if channel_id in self._channels:
                return
            properties, revision = await self._load(channel_id)
            if properties is not None:
                await self._start(
                    channel_id, properties, revision=revision, transport=False
                )

    async def refresh(self, channel_id: str) -> None:
        """Start the local parts again with the stored properties (changed
        or restarted through another process); ownership stays as it is."""
        async with self._lock(channel_id):
            channel = self._channels.get(channel_id)
            if channel is None:
                return
            properties, revision = await self._load(channel_id)
            if properties is None:
                return
            owned = channel.owned
            await self._stop(channel_id)
            await self._start(
                channel_id, properties, revision=revision, transport=owned
            )

    async def drop(self, channel_id: str, delete_queues: bool = True) -> None:
        """Stop a channel deleted through another process, and (with
        ``delete_queues``) delete its queues again: one of our consumers,
        cancelled when that process deleted them, may have declared them
        anew before it was stopped."""
        async with self._lock(channel_id):
            channel = self._channels.get(channel_id)
            if channel is None:
                return
            await self._stop(channel_id)
            self.deps.metrics.forget_channel(
                channel_id, str(channel.properties.get("type"))
            )
            if delete_queues:
                await delete_owned_queues(
                    self.deps.broker, channel_id, with_status=True, log=self.log
                )
        self._locks.pop(channel_id, None)
