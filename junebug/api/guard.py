"""Requests Klein cannot route, answered in the envelope rather than by Klein.

Klein answers a path or ``Host`` that is not UTF-8 with a plain-text 400 (and
logs a traceback), and ``OPTIONS *`` with an empty 200.  :class:`RoutableOnly`
answers both in the envelope and hands every other request to the app.
"""

from __future__ import annotations

from typing import Any

from klein import Klein
from twisted.web.iweb import IRequest
from twisted.web.resource import Resource

from junebug.api.envelope import error_result, render


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

    def __init__(self, app: Klein) -> None:
        super().__init__()
        self._app = app
        self._resource = app.resource()

    def render(self, request: IRequest) -> Any:
        if request.uri == b"*":
            return self._server_options(request)
        segments = [*(request.prepath or ()), *(request.postpath or ())]
        if not _utf8(request.getRequestHostname(), *segments):
            error = {"type": "BadRequest", "message": "The URL or Host is not UTF-8"}
            return render(request, 400, "bad request", error_result([error]))
        return self._resource.render(request)

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
