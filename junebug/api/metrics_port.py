"""The resource of ``metrics_port``: this process's own ``/metrics`` and
``/health/live``, nothing else.

With ``jb --workers N`` the API port is one socket shared by the workers, so
a scrape through it reaches whichever worker accepts the connection; each
worker's metrics port (``metrics_port + k - 1``) reaches that worker only.
The port is not behind the start-up gate (a starting or draining process is
worth watching) but is behind the API's authentication, which leaves
``/health/live`` open as on the API port.
"""

from __future__ import annotations

from typing import Any

from klein import Klein
from twisted.logger import Logger
from twisted.web.iweb import IRequest

from junebug.api import probes
from junebug.api.app import install_error_handlers
from junebug.api.auth import AuthenticatingResource, auth_enabled
from junebug.api.dependencies import ApiDependencies
from junebug.api.guard import RoutableOnly
from junebug.api.metrics import Exposition

log = Logger()


def metrics_port_resource(deps: ApiDependencies, exposition: Exposition) -> Any:
    """``/metrics`` (``exposition``) and ``/health/live``, behind the API's
    credentials if it has any."""
    app = Klein()
    install_error_handlers(app, log)

    @app.route("/metrics", methods=["GET"], endpoint="metrics.metrics")
    async def metrics(request: IRequest) -> bytes:
        return await exposition.render(request)

    @app.route("/health/live", methods=["GET"], endpoint="health.live")
    def live(request: IRequest) -> bytes:
        return probes.live(request, deps)

    resource: Any = RoutableOnly(app, deps.reactor, deps.metrics.api_requests)
    if auth_enabled(deps.config):
        return AuthenticatingResource(resource, deps.config)
    return resource
