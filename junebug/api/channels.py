"""``/channels/``: list, create, inspect, modify, delete, restart, logs."""

from __future__ import annotations

from typing import Any

from klein import Klein
from twisted.internet.interfaces import IReactorThreads
from twisted.web.iweb import IRequest

from junebug.api.dependencies import ApiDependencies
from junebug.api.envelope import render
from junebug.api.schemas import CHANNEL_CREATE, CHANNEL_UPDATE, parse_body
from junebug.api.secrets import redact_channel, restore, wants_secrets
from junebug.channel_logs import read_logs_async
from junebug.channels.properties import as_channel_properties
from junebug.channels.registry import ChannelRegistry
from junebug.errors import ApiUsageError


def query_int(request: IRequest, name: str) -> int | None:
    args = request.args or {}
    values = args.get(name.encode())
    if not values:
        return None
    raw = values[0].decode("utf-8", "replace")
    try:
        value = int(raw)
    except ValueError:
        raise ApiUsageError(
            f'"{name}" must be a positive integer, got {raw!r}'
        ) from None
    if value <= 0:
        raise ApiUsageError(f'"{name}" must be a positive integer, got {raw!r}')
    return value


async def logs_response(
    request: IRequest, deps: ApiDependencies, owner_id: str
) -> bytes:
    """The ``logs`` endpoints: newest first, at most ``max_logs`` entries,
    from the store (any process's entries) or, without one, this process's
    log files."""
    config = deps.config
    n = query_int(request, "n")
    limit = config.max_logs if n is None else min(n, config.max_logs)
    if deps.stored_logs is not None:
        logs = await deps.stored_logs.read_lines(owner_id, limit)
    else:
        threads = IReactorThreads(deps.reactor)
        logs = await read_logs_async(threads, config.logging_path, owner_id, limit)
    return render(request, 200, "logs retrieved", logs)


def shown(request: IRequest, registry: ChannelRegistry, view: dict[str, Any]) -> Any:
    """A channel as a response shows it: secrets redacted unless asked for."""
    if wants_secrets(request):
        return view
    return redact_channel(view, registry.config_class(view.get("type")))


async def with_owner(deps: ApiDependencies, view: dict[str, Any]) -> dict[str, Any]:
    """``view`` with ``status.owner``: the process running the transport
    (``null`` and the channel ``down`` while no live process does)."""
    cluster = deps.cluster
    if cluster is None:
        return view
    owner = await cluster.owner_view(view["id"])
    status = dict(view["status"])
    status["owner"] = owner
    reason = None
    if owner is None:
        reason = "not placed: waiting for a process to take the channel"
    elif owner["host"] is None:
        reason = (
            f"not placed: waiting for the lease of lost process "
            f"{owner['process']} to expire"
        )
    if reason is not None:
        status["status"] = "down"
        status["components"] = {
            **status.get("components", {}),
            "owner": {
                "channel_id": view["id"],
                "component": "owner",
                "status": "down",
                "type": "not_placed",
                "message": reason,
                "details": {},
            },
        }
    return {**view, "status": status}


def install(app: Klein, deps: ApiDependencies) -> None:
    """Add the channel routes to ``app``."""
    registry = deps.channels
    max_size = deps.config.max_body_size

    @app.route("/channels/", methods=["GET"], endpoint="channels.list_channels")
    async def list_channels(request: IRequest) -> bytes:
        ids = await registry.store.list_ids()
        return render(request, 200, "channels listed", ids)

    @app.route("/channels/", methods=["POST"], endpoint="channels.create_channel")
    async def create_channel(request: IRequest) -> bytes:
        body = as_channel_properties(parse_body(request, CHANNEL_CREATE, max_size))
        channel_id = await registry.create(body)
        view = await registry.status_view(channel_id, body)
        return render(request, 201, "channel created", shown(request, registry, view))

    @app.route(
        "/channels/<string:channel_id>",
        methods=["GET"],
        endpoint="channels.get_channel",
    )
    async def get_channel(request: IRequest, channel_id: str) -> bytes:
        properties = await registry.get_properties(channel_id)
        view = await with_owner(
            deps, await registry.status_view(channel_id, properties)
        )
        return render(request, 200, "channel found", shown(request, registry, view))

    @app.route(
        "/channels/<string:channel_id>",
        methods=["POST"],
        endpoint="channels.modify_channel",
    )
    async def modify_channel(request: IRequest, channel_id: str) -> bytes:
        body: dict[str, Any] = parse_body(request, CHANNEL_UPDATE, max_size)
        stored = await registry.get_properties(channel_id)
        changes = as_channel_properties(restore(body, stored))
        if deps.control is not None:
            properties = await deps.control.update(channel_id, changes)
        else:
            properties = await registry.update(channel_id, changes)
        view = await registry.status_view(channel_id, properties)
        return render(request, 200, "channel updated", shown(request, registry, view))

    @app.route(
        "/channels/<string:channel_id>",
        methods=["DELETE"],
        endpoint="channels.delete_channel",
    )
    async def delete_channel(request: IRequest, channel_id: str) -> bytes:
        await (deps.control or registry).delete(channel_id)
        return render(request, 200, "channel deleted", {})

    @app.route(
        "/channels/<string:channel_id>/restart",
        methods=["POST"],
        endpoint="channels.restart_channel",
    )
    async def restart_channel(request: IRequest, channel_id: str) -> bytes:
        await (deps.control or registry).restart(channel_id)
        return render(request, 200, "channel restarted", {})

    @app.route(
        "/channels/<string:channel_id>/logs",
        methods=["GET"],
        endpoint="channels.channel_logs",
    )
    async def channel_logs(request: IRequest, channel_id: str) -> bytes:
        await registry.get_properties(channel_id)
        return await logs_response(request, deps, channel_id)
