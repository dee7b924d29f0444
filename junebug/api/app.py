"""The HTTP API: one Klein app per Junebug; the one place errors become responses."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from klein import Klein
from klein.interfaces import IKleinRequest
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import RequestRedirect

from junebug.api import (
    channels,
    dashboard,
    dead_letters,
    health,
    message_logs,
    messages,
    metrics,
    probes,
    processes,
    routers,
    traffic,
)
from junebug.api.auth import AuthenticatingResource, auth_enabled
from junebug.api.cross_site import CrossSiteGuard
from junebug.api.dependencies import ApiDependencies
from junebug.api.envelope import error_result, render
from junebug.api.guard import RoutableOnly
from junebug.api.openapi import openapi_document
from junebug.api.readiness import ReadinessGate
from junebug.dialects import routes as dialect_routes
from junebug.errors import InvalidBody, JunebugError


class JunebugApi:
    """Builds the Klein app; routes live in the modules that install them."""

    log = Logger()

    def __init__(self, deps: ApiDependencies) -> None:
        self.deps = deps
        self.app = Klein()
        install_error_handlers(self.app, self.log)
        channels.install(self.app, deps)
        messages.install(self.app, deps)
        traffic.install(self.app, deps)
        health.install(self.app, deps)
        probes.install(self.app, deps)
        dead_letters.install(self.app, deps)
        self.exposition = metrics.install(self.app, deps)
        processes.install(self.app, deps)
        self.app.route("/openapi.json", methods=["GET"], endpoint="openapi")(
            self._openapi
        )
        routers.install(self.app, deps)
        if deps.config.dashboard:
            dashboard.install(self.app)
        dialect_routes.install(self.app, deps)
        message_logs.install(self.app, deps)

    def _openapi(self, request: IRequest) -> bytes:
        request.setHeader(b"Content-Type", b"application/json")
        return json.dumps(openapi_document(self.app)).encode("utf-8")

    def resource(self) -> Any:
        """The resource to serve: the app, behind the readiness gate, the
        guard against cross-site changes (with the dashboard on) and
        authentication if configured."""
        resource: Any = RoutableOnly(
            self.app, self.deps.reactor, self.deps.metrics.api_requests
        )
        if self.deps.readiness is not None:
            resource = ReadinessGate(resource, self.deps.readiness)
        if self.deps.config.dashboard:
            resource = CrossSiteGuard(resource)
        if auth_enabled(self.deps.config):
            return AuthenticatingResource(resource, self.deps.config)
        return resource


def dialect_resource(deps: ApiDependencies, log: Logger) -> Any:
    """The resource of ``dialect_port``: only the dialects' send routes,
    behind the readiness gate (their answers stay the dialects')."""
    app = Klein()
    install_error_handlers(app, log)
    dialect_routes.install(app, deps)
    resource: Any = RoutableOnly(app, deps.reactor, deps.metrics.api_requests)
    if deps.readiness is not None:
        resource = ReadinessGate(resource, deps.readiness)
    return resource


def _relative(url: str) -> str:
    """The path and query of ``url`` (its scheme and host dropped)."""
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def _slashless_method_error(request: IRequest) -> MethodNotAllowed | None:
    """The 405 for a wrong method on a collection named without its slash.

    werkzeug 3 answers ``GET /channels/<id>/messages`` (a POST-only route
    defined with a slash) 404; the werkzeug 1 of the original said 405, as
    for any existing path, and so do we.
    """
    mapper = getattr(IKleinRequest(request), "mapper", None)
    path = getattr(mapper, "path_info", None)
    if mapper is None or not isinstance(path, str) or path.endswith("/"):
        return None
    try:
        mapper.match(path + "/")
    except MethodNotAllowed as exc:
        return exc
    except HTTPException:
        return None
    return None


def install_error_handlers(app: Klein, log: Logger) -> None:
    """Make ``app`` answer every error with the envelope (the one error funnel).

    Routing errors (404, 405, 308) keep werkzeug's names and texts, schema
    failures list every problem, Junebug errors carry their own name and code,
    and anything else is logged through ``log`` and answered with a 500.  Used
    by :class:`JunebugApi` and by every other Klein app Junebug serves.
    """

    def routing_error(request: IRequest, failure: Failure) -> bytes:
        exc = failure.value
        assert isinstance(exc, HTTPException)
        if isinstance(exc, NotFound):
            exc = _slashless_method_error(request) or exc
        code = exc.code or 500
        # Redirects carry no description, as in the original ("...: None").
        description = None if isinstance(exc, RequestRedirect) else exc.description
        error: dict[str, Any] = {
            "type": exc.name,
            "code": code,
            "message": f"{code} {exc.name}: {description}",
        }
        if isinstance(exc, RequestRedirect):
            # A relative reference: an absolute one would repeat whatever
            # Host the client sent (a cache could keep it for others).
            new_url = _relative(exc.new_url)
            error["new_url"] = new_url
            request.setHeader(b"Location", new_url.encode("utf-8"))
        if isinstance(exc, MethodNotAllowed) and exc.valid_methods:
            allowed = ", ".join(sorted(exc.valid_methods))
            request.setHeader(b"Allow", allowed.encode("ascii"))
        return render(request, code, description, error_result([error]))

    def invalid_body(request: IRequest, failure: Failure) -> bytes:
        exc = failure.value
        assert isinstance(exc, InvalidBody)
        return render(request, 400, exc.description, error_result(exc.errors))

    def junebug_error(request: IRequest, failure: Failure) -> bytes:
        exc = failure.value
        assert isinstance(exc, JunebugError)
        error = {"type": exc.name, "message": str(exc)}
        return render(request, exc.code, exc.description, error_result([error]))

    def unexpected_error(request: IRequest, failure: Failure) -> bytes:
        log.failure("Unhandled error in the API", failure)
        error = {"type": "InternalError", "message": "an unexpected error occurred"}
        return render(request, 500, "generic error", error_result([error]))

    app.handle_errors(HTTPException)(routing_error)
    app.handle_errors(InvalidBody)(invalid_body)
    app.handle_errors(JunebugError)(junebug_error)
    app.handle_errors(Exception)(unexpected_error)
