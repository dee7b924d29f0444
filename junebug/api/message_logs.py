"""``.../messages/<message_id>/logs``: what happened to one message.

The entries come from the store (:mod:`junebug.stored_logs`), oldest first:
the log lines that named the message and the protocol exchanges its
transport recorded (for SMPP each ``submit_sm`` and its response, the
delivery receipt).  A message id the channel or destination has no record of
(never had, or expired with ``inbound_message_ttl``/``outbound_message_ttl``)
answers 404; a known message without entries an empty list.
"""

from __future__ import annotations

from typing import Any

from klein import Klein
from twisted.web.iweb import IRequest

from junebug.api.dependencies import ApiDependencies
from junebug.api.envelope import render
from junebug.errors import UnknownMessage
from junebug.stored_logs import StoredLogs

DESTINATION = "/routers/<string:router_id>/destinations/<string:destination_id>"


async def message_logs(
    deps: ApiDependencies,
    stored: StoredLogs,
    owner_id: str,
    message_id: str,
    also: tuple[str, ...] = (),
) -> list[dict[str, Any]]:
    """The entries about ``message_id`` of ``owner_id`` (and of the owners in
    ``also``, merged by time), oldest first; :class:`UnknownMessage` if the
    owner has no record of the message."""
    if not await deps.sender.messages.known(owner_id, message_id):
        raise UnknownMessage(f"Cannot find message with ID {message_id} for {owner_id}")
    entries = await stored.read_message(owner_id, message_id)
    for other in also:
        entries.extend(await stored.read_message(other, message_id))
    if also:
        entries.sort(key=lambda entry: entry.get("timestamp") or 0)
    return entries


def install(app: Klein, deps: ApiDependencies) -> None:
    """Add the message logs routes (nothing without stored logs)."""
    stored = deps.stored_logs
    if stored is None:
        return
    channels = deps.channels

    @app.route(
        "/channels/<string:channel_id>/messages/<string:message_id>/logs",
        methods=["GET"],
        endpoint="message_logs.channel_message_logs",
    )
    async def channel_message_logs(
        request: IRequest, channel_id: str, message_id: str
    ) -> bytes:
        await channels.get_properties(channel_id)
        entries = await message_logs(deps, stored, channel_id, message_id)
        return render(request, 200, "message logs retrieved", entries)

    routers = deps.routers
    if routers is None:
        return

    @app.route(
        DESTINATION + "/messages/<string:message_id>/logs",
        methods=["GET"],
        endpoint="message_logs.destination_message_logs",
    )
    async def destination_message_logs(
        request: IRequest, router_id: str, destination_id: str, message_id: str
    ) -> bytes:
        router = await routers.get(router_id)
        await routers.get_destination(router_id, destination_id)
        # The transport's exchanges are recorded under the router's channel.
        config = router.get("config") or {}
        channel = config.get("channel") if isinstance(config, dict) else None
        also = (channel,) if isinstance(channel, str) and channel else ()
        entries = await message_logs(deps, stored, destination_id, message_id, also)
        return render(request, 200, "message logs retrieved", entries)
