"""Whether the API may serve yet: 503 while Junebug starts or stops.

``jb`` listens before Redis and RabbitMQ answer (as the original did), so
requests can arrive before the channels are loaded.  Until
:meth:`Readiness.ready` is set, and again once stopping begins, every route
but ``/health`` and ``/openapi.json`` answers 503 ``NotReady`` with what
Junebug is waiting for.
"""

from __future__ import annotations

from typing import Any

from twisted.web.iweb import IRequest
from twisted.web.resource import Resource

from junebug.api.envelope import error_result, render

ALWAYS_OPEN = frozenset({b"/health", b"/openapi.json"})


class Readiness:
    """What Junebug is doing: starting (and waiting for what), ready, stopping."""

    def __init__(self) -> None:
        self.ready = False
        self.state = "starting"
        self.waiting_for = "start-up"

    def waiting(self, what: str) -> None:
        """Starting, and now waiting for ``what`` (``"Redis at host:port"``)."""
        self.waiting_for = what

    def serve(self) -> None:
        """Everything has started: serve every route."""
        self.ready = True
        self.state = "ready"

    def stop_serving(self) -> None:
        """Stopping: refuse requests again."""
        self.ready = False
        self.state = "stopping"

    def problem(self) -> dict[str, str] | None:
        """None when ready, else the error describing why not."""
        if self.ready:
            return None
        if self.state == "stopping":
            return {"type": "NotReady", "message": "Junebug is stopping"}
        return {
            "type": "NotReady",
            "message": f"Junebug is starting: waiting for {self.waiting_for}",
        }


class ReadinessGate(Resource):
    """Answers 503 ``NotReady`` until ``readiness`` is ready (see the module)."""

    isLeaf = True  # noqa: N815 - the twisted.web name

    def __init__(self, wrapped: Any, readiness: Readiness) -> None:
        super().__init__()
        self._wrapped = wrapped
        self._readiness = readiness

    def render(self, request: IRequest) -> Any:
        problem = self._readiness.problem()
        if problem is None or request.path in ALWAYS_OPEN:
            return self._wrapped.render(request)
        description = f"junebug is {self._readiness.state}"
        return render(request, 503, description, error_result([problem]))
