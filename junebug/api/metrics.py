"""``GET /metrics``: the Prometheus text exposition of this Junebug.

The route sits behind the API's authentication like every other route.  See
docs/metrics.rst for the families.
"""

from __future__ import annotations

from klein import Klein
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from twisted.web.iweb import IRequest

from junebug.api.dependencies import ApiDependencies
from junebug.metrics.state import StateCollector


def install(app: Klein, deps: ApiDependencies) -> None:
    """Add ``/metrics`` to ``app``; register the scrape-time gauges."""
    state = StateCollector(deps.channels)
    deps.metrics.registry.register(state)

    @app.route("/metrics", methods=["GET"], endpoint="metrics.metrics")
    async def metrics(request: IRequest) -> bytes:
        await state.refresh()
        request.setHeader(b"Content-Type", CONTENT_TYPE_LATEST.encode("ascii"))
        return generate_latest(deps.metrics.registry)
