"""Requests Klein cannot route, answered in the envelope rather than by Klein.

Klein answers a path or ``Host`` that is not UTF-8 with a plain-text 400 (and
logs a traceback), and ``OPTIONS *`` with an empty 200.  :class:`RoutableOnly`
answers both in the envelope and hands every other request to the app, timing
it in the API latency histogram when it is given one.
"""

from __future__ import annotations

from typing import Any

from klein import Klein
from prometheus_client import Histogram
from twisted.internet.interfaces import IReactorTime
from twisted.web.iweb import IRequest
from twisted.web.resource import Resource
from werkzeug.exceptions import HTTPException

from junebug.api.envelope import error_result, render
from junebug.api.openapi import path_template

#: Methods the latency histogram names; any other is ``other``.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def _utf8(*parts: bytes) -> bool:
    try:
        for part in parts:
            part.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


class RoutableOnly(Resource):
    """Serves ``app``; see the module doc."""

    isLeaf = True  # noqa: N815 - the twisted.web name

    def __init__(
        self,
        app: Klein,
        clock: IReactorTime | None = None,
        latency: Histogram | None = None,
    ) -> None:
        super().__init__()
        self._app = app
        self._resource = app.resource()
        self._clock = clock
        self._latency = latency
        self._children: dict[tuple[str, str], Any] = {}
        self._routes = app.url_map.bind("")
        self._templates: dict[str, str] = {}

    def render(self, request: IRequest) -> Any:
        if self._latency is not None and self._clock is not None:
            started = self._clock.seconds()
            finished: Any = request
            finished.notifyFinish().addBoth(self._observe, request, started)
        if request.uri == b"*":
            return self._server_options(request)
        segments = [*(request.prepath or ()), *(request.postpath or ())]
        if not _utf8(request.getRequestHostname(), *segments):
            error = {"type": "BadRequest", "message": "The URL or Host is not UTF-8"}
            return render(request, 400, "bad request", error_result([error]))
        return self._resource.render(request)

    def _route(self, request: IRequest) -> str:
        """The route ``request`` matched (``/channels/{channel_id}``), or
        ``unmatched``: never the raw path, which would label every id."""
        path = b"/" + b"/".join([*(request.prepath or ()), *(request.postpath or ())])
        try:
            rule, _ = self._routes.match(
                path.decode("utf-8"),
                method=request.method.decode("ascii"),
                return_rule=True,
            )
        except (HTTPException, UnicodeDecodeError):
            return "unmatched"
        template = self._templates.get(rule.rule)
        if template is None:
            template = self._templates[rule.rule] = path_template(rule.rule)[0]
        return template

    def _observe(self, result: object, request: IRequest, started: float) -> None:
        assert self._latency is not None and self._clock is not None
        method = request.method.decode("ascii", "replace")
        key = (self._route(request), method if method in METHODS else "other")
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self._latency.labels(*key)
        child.observe(self._clock.seconds() - started)

    def _server_options(self, request: IRequest) -> bytes:
        """``OPTIONS *`` asks what the server supports: the methods of its
        routes.  Any other method cannot name ``*``."""
        if request.method != b"OPTIONS":
            error = {"type": "BadRequest", "message": "Only OPTIONS may ask for *"}
            return render(request, 400, "bad request", error_result([error]))
        methods = sorted(
            {
                method
                for rule in self._app.url_map.iter_rules()
                for method in rule.methods or ()
            }
        )
        request.setHeader(b"Allow", ", ".join(methods).encode("ascii"))
        return render(request, 200, "server options", {"methods": methods})
