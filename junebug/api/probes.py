"""``/health/live`` and ``/health/ready``: probes for an orchestrator
(Kubernetes liveness and readiness), beside the compatible ``/health``.

Neither is behind the start-up gate nor needs credentials
(see :data:`junebug.api.readiness.PROBE_PATHS`).  ``live`` answers 200
whenever the process serves HTTP, even while it starts or drains;
``ready`` answers 200 only once Junebug has started, its backends answer
and every stored channel is placed (started here, or its start failed),
and 503 with the problems otherwise, so an orchestrator sends traffic only
to a Junebug that can take it.
"""

from __future__ import annotations

from typing import Any

from klein import Klein
from twisted.web.iweb import IRequest

from junebug.api.dependencies import ApiDependencies
from junebug.api.envelope import error_result, render


def live(request: IRequest, deps: ApiDependencies) -> bytes:
    """``/health/live``: 200 with the state (starting, ready, stopping)."""
    readiness = deps.readiness
    state = "ready" if readiness is None else readiness.state
    return render(request, 200, "live", {"state": state})


def install(app: Klein, deps: ApiDependencies) -> None:
    """Add the probes to ``app``."""

    @app.route("/health/live", methods=["GET"], endpoint="health.live")
    def live_route(request: IRequest) -> bytes:
        return live(request, deps)

    @app.route("/health/ready", methods=["GET"], endpoint="health.ready")
    async def ready(request: IRequest) -> bytes:
        problems: list[dict[str, Any]] = []
        for check in deps.ready_checks:
            found = await check()
            if isinstance(found, dict):
                problems.append(found)
            elif found:
                problems.extend(found)
        if problems:
            return render(request, 503, "not ready", error_result(problems))
        return render(request, 200, "ready", {})
