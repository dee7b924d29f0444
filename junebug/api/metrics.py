"""``GET /metrics``: the Prometheus exposition of this Junebug.

The text format (0.0.4) unless the scraper's ``Accept`` asks for OpenMetrics.
The route sits behind the API's authentication like every other route.  See
docs/metrics.rst for the families.
"""

from __future__ import annotations

from klein import Klein
from prometheus_client.exposition import choose_encoder
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
        accept = request.getHeader(b"accept") or b""
        encode, content_type = choose_encoder(accept.decode("latin-1"))
        request.setHeader(b"Content-Type", content_type.encode("ascii"))
        return encode(deps.metrics.registry)
