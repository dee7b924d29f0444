"""``/channels/<id>/messages/``: send an MT message and read its events."""

from __future__ import annotations

from typing import Any

from klein import Klein
from twisted.web.iweb import IRequest

from junebug.api.dependencies import ApiDependencies
from junebug.api.envelope import render
from junebug.api.schemas import MESSAGE_SEND, parse_body
from junebug.channels.properties import has_destination
from junebug.errors import ApiUsageError
from junebug.messages import api_event_view
from junebug.stores.messages import MessageStore


async def message_status(
    messages: MessageStore, owner_id: str, message_id: str
) -> dict[str, Any]:
    """The message status result: every stored event, oldest first."""
    events = [
        api_event_view(event, owner_id)
        for event in await messages.load_events(owner_id, message_id)
    ]
    last = events[-1] if events else None
    return {
        "id": message_id,
        "last_event_type": last["event_type"] if last else None,
        "last_event_timestamp": last["timestamp"] if last else None,
        "events": events,
    }


def install(app: Klein, deps: ApiDependencies) -> None:
    """Add the channel message routes to ``app``."""
    registry = deps.channels
    sender = deps.sender
    max_size = deps.config.max_body_size

    @app.route(
        "/channels/<string:channel_id>/messages/",
        methods=["POST"],
        endpoint="channel_messages.send_message",
    )
    async def send_message(request: IRequest, channel_id: str) -> bytes:
        body: dict[str, Any] = parse_body(request, MESSAGE_SEND, max_size)
        properties = await registry.get_properties(channel_id)
        view = await sender.send(channel_id, properties, body)
        return render(request, 201, "message submitted", view)

    @app.route(
        "/channels/<string:channel_id>/messages/<string:message_id>",
        methods=["GET"],
        endpoint="channel_messages.get_message",
    )
    async def get_message(request: IRequest, channel_id: str, message_id: str) -> bytes:
        properties = await registry.get_properties(channel_id)
        if not has_destination(properties):
            raise ApiUsageError('This channel has no "mo_url" or "amqp_queue"')
        result = await message_status(sender.messages, channel_id, message_id)
        return render(request, 200, "message status", result)
