"""``/dead-letters/http``: HTTP deliveries that gave up, to inspect and replay."""

from __future__ import annotations

from klein import Klein
from twisted.web.iweb import IRequest

from junebug.api.channels import query_int
from junebug.api.dependencies import ApiDependencies
from junebug.api.envelope import render

DEFAULT_LIMIT = 100


def install(app: Klein, deps: ApiDependencies) -> None:
    """Add the dead-letter routes to ``app``."""

    @app.route(
        "/dead-letters/http", methods=["GET"], endpoint="dead_letters.list_dead_letters"
    )
    async def list_dead_letters(request: IRequest) -> bytes:
        limit = query_int(request, "n") or DEFAULT_LIMIT
        letters = await deps.delivery.dead_letters(limit)
        return render(request, 200, "dead letters listed", letters)

    @app.route(
        "/dead-letters/http/replay",
        methods=["POST"],
        endpoint="dead_letters.replay_dead_letters",
    )
    async def replay_dead_letters(request: IRequest) -> bytes:
        limit = query_int(request, "n") or DEFAULT_LIMIT
        count = await deps.delivery.replay_dead_letters(limit)
        return render(request, 200, "dead letters replayed", {"replayed": count})
