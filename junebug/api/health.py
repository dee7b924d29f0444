"""``/health``: is Junebug serving, and (optionally) are its queues moving?

Every error entry has ``type`` and ``message`` (as ``docs/http-api.rst``
says of all errors); those about a queue also name it (``name``).
"""

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
        problems: list[dict[str, Any]] = []
        for check in deps.health_checks:
            found = await check()
            if isinstance(found, dict):
                problems.append(found)
            elif found:
                problems.extend(found)
        if problems:
            return render(request, 503, "unhealthy", {"errors": problems})
        interface = deps.config.rabbitmq_management_interface
        if not interface:
            return render(request, 200, "health ok", {})
        owners = list(deps.channels.running_ids())
        owners.extend(await _destination_ids(deps))
        amqp = deps.config.amqp
        vhost = quote(amqp.vhost, safe="")
        limit = DeferredSemaphore(20)
        names = [f"{owner}.{suffix}" for owner in owners for suffix in QUEUE_SUFFIXES]

        async def fetch(name: str) -> tuple[str, Any, dict[str, Any] | None]:
            url = f"http://{interface}/api/queues/{vhost}/{quote(name, safe='')}"
            try:
                code, info = await deps.http.get_json(
                    url, auth=(amqp.username, amqp.password), timeout=10.0
                )
            except Exception as exc:
                return (
                    name,
                    None,
                    _error(UNREACHABLE, name, f"cannot ask about queue {name}: {exc}"),
                )
            return name, info, answer_error(name, code, info)

        results = await gatherResults([limit.run(fetch, name) for name in names])
        errors = [error for _name, _info, error in results if error]
        if errors:
            unreachable = any(e["type"] == UNREACHABLE for e in errors)
            description = (
                "rabbitmq management unreachable"
                if unreachable
                else "rabbitmq management error"
            )
            return render(request, 503, description, {"errors": errors})
        queues = [q for name, info, _ in results if (q := queue_health(name, info))]
        if any(q["stuck"] for q in queues):
            return render(request, 500, "queues stuck", queues)
        return render(request, 200, "queues ok", queues)


UNREACHABLE = "RabbitMQManagementUnreachable"
BAD_ANSWER = "RabbitMQManagementError"


def _error(kind: str, name: str, message: str) -> dict[str, Any]:
    return {"type": kind, "message": message, "name": name}


def answer_error(name: str, code: int, info: Any) -> dict[str, Any] | None:
    """The error for a management API answer that says nothing about the
    queue, or None: a 404 is a queue that does not exist (skipped)."""
    if code == 404:
        return None
    if code >= 400:
        return _error(
            BAD_ANSWER, name, f"the management API answered {code} for queue {name}"
        )
    if not isinstance(info, dict):
        return _error(
            BAD_ANSWER,
            name,
            f"the management API answered {code} without a JSON object "
            f"for queue {name}",
        )
    return None


async def _destination_ids(deps: ApiDependencies) -> list[str]:
    routers = getattr(deps, "routers", None)
    if routers is None:
        return []
    ids: list[str] = await routers.destination_ids()
    return ids
