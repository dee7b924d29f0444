"""``/health``: is Junebug serving, and (optionally) are its queues moving?"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from klein import Klein
from twisted.internet.defer import DeferredSemaphore, gatherResults
from twisted.web.iweb import IRequest

from junebug.api.dependencies import ApiDependencies
from junebug.api.envelope import render

QUEUE_SUFFIXES = ("inbound", "outbound", "event")


def queue_health(name: str, info: Any) -> dict[str, Any] | None:
    """One queue's entry, or None when the management API had no count for it."""
    if not isinstance(info, dict) or "messages" not in info:
        return None
    entry: dict[str, Any] = {"name": name, "messages": info["messages"], "stuck": False}
    stats = info.get("message_stats")
    if isinstance(stats, dict):
        rate = (stats.get("ack_details") or {}).get("rate", 0)
        entry["rate"] = rate
        entry["stuck"] = bool(info["messages"]) and rate == 0
    return entry


def install(app: Klein, deps: ApiDependencies) -> None:
    """Add ``/health`` to ``app``."""

    @app.route("/health", methods=["GET"], endpoint="health.health")
    async def health(request: IRequest) -> bytes:
        for check in deps.health_checks:
            problem = await check()
            if problem:
                return render(request, 503, "unhealthy", {"errors": [problem]})
        interface = deps.config.rabbitmq_management_interface
        if not interface:
            return render(request, 200, "health ok", {})
        owners = list(deps.channels.running_ids())
        owners.extend(await _destination_ids(deps))
        amqp = deps.config.amqp
        vhost = quote(amqp.vhost, safe="")
        limit = DeferredSemaphore(20)
        names = [f"{owner}.{suffix}" for owner in owners for suffix in QUEUE_SUFFIXES]

        async def fetch(name: str) -> tuple[str, Any, str | None]:
            url = f"http://{interface}/api/queues/{vhost}/{quote(name, safe='')}"
            try:
                _code, info = await deps.http.get_json(
                    url, auth=(amqp.username, amqp.password), timeout=10.0
                )
            except Exception as exc:
                return name, None, f"{type(exc).__name__}: {exc}"
            return name, info, None

        results = await gatherResults([limit.run(fetch, name) for name in names])
        errors = [
            {"name": name, "error": error} for name, _info, error in results if error
        ]
        if errors:
            return render(
                request, 503, "rabbitmq management unreachable", {"errors": errors}
            )
        queues = [q for name, info, _ in results if (q := queue_health(name, info))]
        if any(q["stuck"] for q in queues):
            return render(request, 500, "queues stuck", queues)
        return render(request, 200, "queues ok", queues)


async def _destination_ids(deps: ApiDependencies) -> list[str]:
    routers = getattr(deps, "routers", None)
    if routers is None:
        return []
    ids: list[str] = await routers.destination_ids()
    return ids
