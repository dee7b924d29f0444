"""Whether the API may serve yet: 503 while Junebug starts or stops.

``jb`` listens before Redis and RabbitMQ answer (as the original did), so
requests can arrive before the channels are loaded.  Until
:meth:`Readiness.ready` is set, and again once stopping begins, every route
but ``/health`` and ``/openapi.json`` answers 503 ``NotReady`` with what
Junebug is waiting for; while stopping it adds ``Retry-After`` (another
Junebug, or this one restarted, will take the request).  The probes
``/health/live`` and ``/health/ready`` are never gated (see
:mod:`junebug.api.probes`).  Requests that pass are counted in
:attr:`Readiness.in_flight`, so a drain can wait for them.
"""

from __future__ import annotations

from typing import Any

from twisted.web.iweb import IRequest
from twisted.web.resource import Resource

from junebug.api.envelope import error_result, render
from junebug.api.in_flight import InFlight

#: The Kubernetes-style probes: open like ``/health`` (no gate, no auth).
PROBE_PATHS = frozenset({b"/health/live", b"/health/ready"})
ALWAYS_OPEN = frozenset({b"/health", b"/openapi.json"}) | PROBE_PATHS
#: Seconds a client refused while Junebug stops is told to wait.
RETRY_AFTER_STOPPING = 5


class Readiness:
    """What Junebug is doing: starting (and waiting for what), ready, stopping."""

    def __init__(self) -> None:
        self.ready = False
        self.state = "starting"
        self.waiting_for = "start-up"
        #: Requests past the gate that have not finished yet.
        self.in_flight = InFlight()

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
        if request.path in ALWAYS_OPEN:
            return self._wrapped.render(request)
        if problem is None:
            self._readiness.in_flight.track(request)
            return self._wrapped.render(request)
        if self._readiness.state == "stopping":
            request.setHeader(b"Retry-After", str(RETRY_AFTER_STOPPING).encode())
        description = f"junebug is {self._readiness.state}"
        return render(request, 503, description, error_result([problem]))
