"""``/routers/``: routers, their destinations, logs and destination messages."""

from __future__ import annotations

from typing import Any

from klein import Klein
from twisted.web.iweb import IRequest

from junebug.api.channels import logs_response
from junebug.api.dependencies import ApiDependencies
from junebug.api.envelope import render
from junebug.api.messages import message_status
from junebug.api.schemas import (
    DESTINATION_CREATE,
    DESTINATION_PATCH,
    MESSAGE_SEND,
    ROUTER_CREATE,
    ROUTER_PATCH,
    parse_body,
)
from junebug.api.secrets import restore, wants_secrets
from junebug.redaction import redact

ROUTER = "/routers/<string:router_id>"
DESTINATION = ROUTER + "/destinations/<string:destination_id>"


def shown(request: IRequest, view: Any) -> Any:
    """A router or destination as a response shows it: tokens and URL
    passwords redacted by key name unless the request asks for them."""
    return view if wants_secrets(request) else redact(view)


def install(app: Klein, deps: ApiDependencies) -> None:
    """Add the router routes to ``app`` (nothing if Junebug has no routers)."""
    registry = deps.routers
    if registry is None:
        return
    max_size = deps.config.max_body_size

    # -- routers ---------------------------------------------------------------

    @app.route("/routers/", methods=["GET"])
    async def list_routers(request: IRequest) -> bytes:
        return render(request, 200, "routers retrieved", await registry.list_ids())

    @app.route("/routers/", methods=["POST"])
    async def create_router(request: IRequest) -> bytes:
        body: dict[str, Any] = parse_body(request, ROUTER_CREATE, max_size)
        router = await registry.create(body)
        return render(request, 201, "router created", shown(request, router))

    @app.route(ROUTER, methods=["GET"])
    async def get_router(request: IRequest, router_id: str) -> bytes:
        router = await registry.get(router_id)
        return render(request, 200, "router found", shown(request, router))

    @app.route(ROUTER, methods=["PUT"])
    async def replace_router(request: IRequest, router_id: str) -> bytes:
        body: dict[str, Any] = parse_body(request, ROUTER_CREATE, max_size)
        body = restore(body, await registry.get(router_id))
        router = await registry.replace(router_id, body)
        return render(request, 200, "router updated", shown(request, router))

    @app.route(ROUTER, methods=["PATCH"])
    async def patch_router(request: IRequest, router_id: str) -> bytes:
        body: dict[str, Any] = parse_body(request, ROUTER_PATCH, max_size)
        body = restore(body, await registry.get(router_id))
        router = await registry.patch(router_id, body)
        return render(request, 200, "router updated", shown(request, router))

    @app.route(ROUTER, methods=["DELETE"])
    async def delete_router(request: IRequest, router_id: str) -> bytes:
        await registry.delete(router_id)
        return render(request, 200, "router deleted", {})

    @app.route(ROUTER + "/logs", methods=["GET"])
    async def router_logs(request: IRequest, router_id: str) -> bytes:
        await registry.get(router_id)
        return await logs_response(request, deps, router_id)

    # -- destinations ----------------------------------------------------------

    @app.route(ROUTER + "/destinations/", methods=["GET"])
    async def list_destinations(request: IRequest, router_id: str) -> bytes:
        ids = await registry.list_destination_ids(router_id)
        return render(request, 200, "destinations retrieved", ids)

    @app.route(ROUTER + "/destinations/", methods=["POST"])
    async def create_destination(request: IRequest, router_id: str) -> bytes:
        body: dict[str, Any] = parse_body(request, DESTINATION_CREATE, max_size)
        destination = await registry.create_destination(router_id, body)
        return render(request, 201, "destination created", shown(request, destination))

    @app.route(DESTINATION, methods=["GET"])
    async def get_destination(
        request: IRequest, router_id: str, destination_id: str
    ) -> bytes:
        destination = await registry.get_destination(router_id, destination_id)
        return render(request, 200, "destination found", shown(request, destination))

    @app.route(DESTINATION, methods=["PUT"])
    async def replace_destination(
        request: IRequest, router_id: str, destination_id: str
    ) -> bytes:
        body: dict[str, Any] = parse_body(request, DESTINATION_CREATE, max_size)
        stored = await registry.get_destination(router_id, destination_id)
        body = restore(body, stored)
        destination = await registry.replace_destination(
            router_id, destination_id, body
        )
        return render(request, 200, "destination updated", shown(request, destination))

    @app.route(DESTINATION, methods=["PATCH"])
    async def patch_destination(
        request: IRequest, router_id: str, destination_id: str
    ) -> bytes:
        body: dict[str, Any] = parse_body(request, DESTINATION_PATCH, max_size)
        stored = await registry.get_destination(router_id, destination_id)
        body = restore(body, stored)
        destination = await registry.patch_destination(router_id, destination_id, body)
        return render(request, 200, "destination updated", shown(request, destination))

    @app.route(DESTINATION, methods=["DELETE"])
    async def delete_destination(
        request: IRequest, router_id: str, destination_id: str
    ) -> bytes:
        await registry.delete_destination(router_id, destination_id)
        return render(request, 200, "destination deleted", {})

    @app.route(DESTINATION + "/logs", methods=["GET"])
    async def destination_logs(
        request: IRequest, router_id: str, destination_id: str
    ) -> bytes:
        await registry.get_destination(router_id, destination_id)
        return await logs_response(request, deps, destination_id)

    # -- destination messages --------------------------------------------------

    @app.route(DESTINATION + "/messages/", methods=["POST"])
    async def send_message(
        request: IRequest, router_id: str, destination_id: str
    ) -> bytes:
        body: dict[str, Any] = parse_body(request, MESSAGE_SEND, max_size)
        view = await registry.send(router_id, destination_id, body)
        return render(request, 201, "message submitted", view)

    @app.route(DESTINATION + "/messages/<string:message_id>", methods=["GET"])
    async def get_message(
        request: IRequest, router_id: str, destination_id: str, message_id: str
    ) -> bytes:
        await registry.get_destination(router_id, destination_id)
        result = await message_status(deps.sender.messages, destination_id, message_id)
        return render(request, 200, "message status", result)
