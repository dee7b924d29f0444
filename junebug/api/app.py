"""The HTTP API: one Klein app per Junebug; the one place errors become responses."""

from __future__ import annotations

from typing import Any

import attrs
from klein import Klein
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest
from werkzeug.exceptions import HTTPException
from werkzeug.routing import RequestRedirect

from junebug.api import channels, health, messages
from junebug.api.envelope import error_result, render
from junebug.api.schemas import InvalidBody
from junebug.channels.registry import ChannelRegistry
from junebug.channels.sending import MessageSender
from junebug.config import JunebugConfig
from junebug.errors import JunebugError


@attrs.define
class ApiDependencies:
    """What the API's routes need."""

    config: JunebugConfig
    channels: ChannelRegistry
    sender: MessageSender
    reactor: Any
    http: Any
    health_checks: list[Any] = attrs.field(factory=list)


class JunebugApi:
    """Builds the Klein app; routes live in the modules that install them."""

    log = Logger()

    def __init__(self, deps: ApiDependencies) -> None:
        self.deps = deps
        self.app = Klein()
        self.app.handle_errors(HTTPException)(self._routing_error)
        self.app.handle_errors(InvalidBody)(self._invalid_body)
        self.app.handle_errors(JunebugError)(self._junebug_error)
        self.app.handle_errors(Exception)(self._unexpected_error)
        channels.install(self.app, deps)
        messages.install(self.app, deps)
        health.install(self.app, deps)

    def resource(self) -> Any:
        return self.app.resource()

    def _routing_error(self, request: IRequest, failure: Failure) -> bytes:
        exc = failure.value
        assert isinstance(exc, HTTPException)
        code = exc.code or 500
        error: dict[str, Any] = {
            "type": exc.name,
            "code": code,
            "message": f"{code} {exc.name}: {exc.description}",
        }
        if isinstance(exc, RequestRedirect):
            error["new_url"] = exc.new_url
            request.setHeader(b"Location", exc.new_url.encode("utf-8"))
        return render(request, code, exc.description, error_result([error]))

    def _invalid_body(self, request: IRequest, failure: Failure) -> bytes:
        exc = failure.value
        assert isinstance(exc, InvalidBody)
        return render(request, 400, exc.description, error_result(exc.errors))

    def _junebug_error(self, request: IRequest, failure: Failure) -> bytes:
        exc = failure.value
        assert isinstance(exc, JunebugError)
        error = {"type": exc.name, "message": str(exc)}
        return render(request, exc.code, exc.description, error_result([error]))

    def _unexpected_error(self, request: IRequest, failure: Failure) -> bytes:
        self.log.failure("Unhandled error in the API", failure)
        error = {"type": "InternalError", "message": "an unexpected error occurred"}
        return render(request, 500, "generic error", error_result([error]))
