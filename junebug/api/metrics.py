"""``GET /metrics``: the Prometheus exposition of this Junebug.

The text format (0.0.4) unless the scraper's ``Accept`` asks for OpenMetrics.
The route sits behind the API's authentication like every other route, on the
API port and (with ``metrics_port``) on this process's own metrics port (see
:mod:`junebug.api.metrics_port`).  See docs/metrics.rst for the families.
"""

from __future__ import annotations

from klein import Klein
from prometheus_client.exposition import choose_encoder
from twisted.web.iweb import IRequest

from junebug.api.dependencies import ApiDependencies
from junebug.metrics.state import StateCollector


class Exposition:
    """Renders this process's registry; registers the scrape-time gauges once,
    however many ports serve it."""

    def __init__(self, deps: ApiDependencies) -> None:
        self._deps = deps
        self._state = StateCollector(deps.channels)
        deps.metrics.registry.register(self._state)

    async def render(self, request: IRequest) -> bytes:
        await self._state.refresh()
        accept = request.getHeader(b"accept") or b""
        encode, content_type = choose_encoder(accept.decode("latin-1"))
        request.setHeader(b"Content-Type", content_type.encode("ascii"))
        return encode(self._deps.metrics.registry)


def install(app: Klein, deps: ApiDependencies) -> Exposition:
    """Add ``/metrics`` to ``app``; the exposition it serves."""
    exposition = Exposition(deps)

    @app.route("/metrics", methods=["GET"], endpoint="metrics.metrics")
    async def metrics(request: IRequest) -> bytes:
        return await exposition.render(request)

    return exposition
