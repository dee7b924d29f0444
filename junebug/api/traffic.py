"""Holding and cancelling a channel's queued MT.

``POST /channels/<id>/pause`` and ``/resume``; ``DELETE
/channels/<id>/messages/<msg_id>`` cancels one queued message and ``DELETE
/channels/<id>/messages/`` every one waiting (``?priority=``, ``?older_than=``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from klein import Klein
from twisted.web.iweb import IRequest

from junebug.amqp import topology
from junebug.api.dependencies import ApiDependencies
from junebug.api.envelope import render
from junebug.errors import ApiUsageError
from junebug.messages import format_timestamp, parse_timestamp


def _query(request: IRequest, name: str) -> str | None:
    values = (request.args or {}).get(name.encode())
    return values[0].decode("utf-8", "replace") if values else None


def query_priorities(request: IRequest) -> tuple[int, ...]:
    """``?priority=`` (1 to 5) as a tuple, or every priority."""
    raw = _query(request, "priority")
    if raw is None:
        return topology.PRIORITIES
    if raw not in {str(p) for p in topology.PRIORITIES}:
        raise ApiUsageError(f'"priority" must be an integer from 1 to 5, got {raw!r}')
    return (int(raw),)


def query_cutoff(request: IRequest, now: datetime) -> datetime:
    """``?older_than=``: seconds of age, or a UTC time (ISO 8601 or vumi's
    format); the cutoff is never later than ``now``."""
    raw = _query(request, "older_than")
    if raw is None:
        return now
    try:
        seconds = float(raw)
    except ValueError:
        pass
    else:
        if not 0 <= seconds < 10**9:
            raise ApiUsageError(
                f'"older_than" must be a number of seconds >= 0, got {raw!r}'
            )
        return now - timedelta(seconds=seconds)
    try:
        when = parse_timestamp(raw)
    except ValueError:
        try:
            when = datetime.fromisoformat(raw)
        except ValueError:
            raise ApiUsageError(
                f'"older_than" must be seconds or a UTC time, got {raw!r}'
            ) from None
        if when.tzinfo is None:
            raise ApiUsageError(
                f'"older_than" must say its time zone (e.g. "Z"), got {raw!r}'
            ) from None
        when = when.astimezone(UTC)
    return min(when, now)


def install(app: Klein, deps: ApiDependencies) -> None:
    """Add the pause, resume and cancel routes to ``app``."""
    registry = deps.channels
    canceller = registry.deps.canceller

    @app.route(
        "/channels/<string:channel_id>/pause",
        methods=["POST"],
        endpoint="channels.pause_channel",
    )
    async def pause_channel(request: IRequest, channel_id: str) -> bytes:
        await registry.pause(channel_id, True)
        return render(request, 200, "channel paused", {"paused": True})

    @app.route(
        "/channels/<string:channel_id>/resume",
        methods=["POST"],
        endpoint="channels.resume_channel",
    )
    async def resume_channel(request: IRequest, channel_id: str) -> bytes:
        await registry.pause(channel_id, False)
        return render(request, 200, "channel resumed", {"paused": False})

    @app.route(
        "/channels/<string:channel_id>/messages/<string:message_id>",
        methods=["DELETE"],
        endpoint="channel_messages.cancel_message",
    )
    async def cancel_message(
        request: IRequest, channel_id: str, message_id: str
    ) -> bytes:
        await registry.get_properties(channel_id)
        now = await canceller.cancel_one(channel_id, message_id)
        result = {"id": message_id, "cancelled": True, "already_cancelled": not now}
        return render(request, 200, "message cancelled", result)

    @app.route(
        "/channels/<string:channel_id>/messages/",
        methods=["DELETE"],
        endpoint="channel_messages.cancel_messages",
    )
    async def cancel_messages(request: IRequest, channel_id: str) -> bytes:
        priorities = query_priorities(request)
        cutoff = query_cutoff(request, datetime.now(UTC))
        await registry.get_properties(channel_id)
        count = await canceller.cancel_queued(channel_id, priorities, cutoff)
        channel = registry.running(channel_id)
        if channel is not None:
            channel.traffic.forget()
        result = {
            "cancelled": count,
            "priorities": list(priorities),
            "before": format_timestamp(cutoff),
        }
        return render(request, 200, "messages cancelled", result)
