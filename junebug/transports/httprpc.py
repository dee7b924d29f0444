"""Serving HTTP for a channel: routes, held requests, webhooks and statuses.

Some channel types are HTTP servers: the provider calls us.  USSD gateways
such as Dmark make one request per user input and wait for the reply on the
same request ("HTTP-RPC"); SMS aggregators post inbound messages and delivery
reports to a webhook.  This module holds what they share:

- :class:`HttpRpcConfig`: where to listen (``web_path``, ``web_port``...), the
  optional HTTP Basic credentials, the request timeout and the response-time
  thresholds, with vumi's ``HttpRpcTransport`` names and defaults.
- :class:`ChannelWebServer`: listens, routes requests by path, checks Basic
  auth, serves the health path, and keeps requests open until
  :meth:`ChannelWebServer.finish` answers them or their timeout expires.  On
  stop it answers every held request and closes every connection, so nothing
  is left behind.

Status events and background work go through the transport's
:class:`~junebug.transports.toolkit.StatusReporter` and
:class:`~junebug.transports.toolkit.BackgroundTasks`.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable, Iterable
from typing import Any, ClassVar, Final
from urllib.parse import parse_qs

import attrs
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.interfaces import IDelayedCall, IListeningPort, IReactorTime
from twisted.logger import Logger
from twisted.protocols.policies import ProtocolWrapper, WrappingFactory
from twisted.web import http
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site

from junebug.errors import ConfigError
from junebug.http.server import Gate, LimitedSite, Refusal, ServerLimits
from junebug.messages import generate_id
from junebug.reactors import TimeTCPReactor
from junebug.redaction import MASKED, SECRET
from junebug.transports.toolkit import StatusReporter

__all__ = [
    "NOT_DONE_YET",
    "ChannelWebServer",
    "HeldRequest",
    "HttpRpcConfig",
    "Response",
    "describe_request",
    "error_response",
    "json_response",
    "normalise_path",
    "request_args",
]

STRICT: Final = "strict"
PERMISSIVE: Final = "permissive"
VALIDATION_MODES: Final = (STRICT, PERMISSIVE)
#: What a request held open when the channel stops is answered with.
STOPPING_CODE: Final = http.SERVICE_UNAVAILABLE

#: What a route handler returns: a body to send now, or NOT_DONE_YET.
RouteResult = bytes | int
RouteHandler = Callable[[Request], RouteResult]


def normalise_path(path: str) -> str:
    """``/a/b`` for ``a/b``, ``/a/b/`` and ``//a/b``; ``/`` for an empty path."""
    return "/" + path.strip("/")


@attrs.frozen
class HttpRpcConfig:
    """Where an HTTP channel listens, and how it treats held requests.

    The names and defaults are vumi ``HttpRpcTransport``'s.  ``web_interface``
    is new: the address to bind (default: every IPv4 interface, as vumi).
    ``request_cleanup_interval`` is accepted for compatibility and unused:
    every held request has its own timer, so it expires on time.
    ``max_body_size``, ``header_timeout`` and ``max_connections`` are the
    limits of :class:`junebug.http.server.ServerLimits` for this port.
    """

    web_path: str | None = None
    web_port: int = 0
    web_interface: str = ""
    web_username: str | None = None
    web_password: str | None = attrs.field(default=None, metadata=SECRET, repr=MASKED)
    web_auth_domain: str = "Junebug"
    health_path: str = "health"
    request_cleanup_interval: float = 5
    request_timeout: float = 240
    request_timeout_status_code: int = 504
    request_timeout_body: str = ""
    noisy: bool = False
    validation_mode: str = STRICT
    response_time_degraded: float = 1.0
    response_time_down: float = 10.0
    max_body_size: int = 1_048_576
    header_timeout: float = 30.0
    max_connections: int = 1024

    def __attrs_post_init__(self) -> None:
        if not 0 <= self.web_port <= 65535:
            raise ConfigError(f"web_port: {self.web_port} is not a TCP port number")
        if self.web_path is not None and not self.web_path.strip("/"):
            raise ConfigError("web_path: must name a path such as '/dmark/ussd'")
        if (self.web_username is None) != (self.web_password is None):
            raise ConfigError(
                "web_username, web_password: give both (HTTP Basic auth) or neither"
            )
        if self.request_timeout <= 0:
            raise ConfigError("request_timeout: must be more than 0 seconds")
        if not 100 <= self.request_timeout_status_code <= 599:
            raise ConfigError(
                f"request_timeout_status_code: {self.request_timeout_status_code} "
                "is not an HTTP status code"
            )
        if self.max_body_size <= 0:
            raise ConfigError("max_body_size: must be more than 0 bytes")
        if self.header_timeout <= 0:
            raise ConfigError("header_timeout: must be more than 0 seconds")
        if self.max_connections < 0:
            raise ConfigError("max_connections: must not be negative (0: no limit)")
        if self.validation_mode not in VALIDATION_MODES:
            raise ConfigError(
                f"validation_mode: must be one of {', '.join(VALIDATION_MODES)}, "
                f"not {self.validation_mode!r}"
            )
        if self.web_path is not None and normalise_path(
            self.web_path
        ) == normalise_path(self.health_path):
            raise ConfigError("health_path: must differ from web_path")

    @property
    def server_limits(self) -> ServerLimits:
        """What the channel's HTTP port accepts."""
        return ServerLimits(
            max_body_size=self.max_body_size,
            header_timeout=self.header_timeout,
            max_connections=self.max_connections,
        )

    @property
    def path(self) -> str:
        """``web_path`` normalised to ``/a/b`` (``/`` if there is none)."""
        return normalise_path(self.web_path or "")


@attrs.define
class HeldRequest:
    """A request held open until its reply (or its timeout)."""

    request_id: str
    request: Request
    started: float
    timer: IDelayedCall | None = None
    #: Whatever the channel type wants to remember with it (e.g. the MO).
    data: dict[str, Any] = attrs.field(factory=dict)


@attrs.frozen
class Response:
    """An HTTP answer: status code, body and content type."""

    code: int
    body: bytes
    content_type: str = "application/json; charset=utf-8"


class _Router(Resource):
    isLeaf = True  # noqa: N815 - Twisted's name

    def __init__(self, server: ChannelWebServer) -> None:
        super().__init__()
        self._server = server

    def render(self, request: Request) -> RouteResult:
        return self._server.dispatch(request)


def _error_body(refusal: Refusal) -> tuple[bytes, bytes]:
    """A refused request, in the channels' error format (``{"error": ...}``)."""
    response = error_response(refusal.code, refusal.message)
    return response.content_type.encode(), response.body


class _QuietSite(LimitedSite):
    """The shared HTTP server; it writes no access log unless asked to."""

    def __init__(
        self,
        resource: Resource,
        reactor: IReactorTime,
        config: HttpRpcConfig,
        gate: Gate,
    ) -> None:
        super().__init__(
            resource,
            reactor=reactor,
            limits=config.server_limits,
            error_body=_error_body,
            gate=gate,
        )
        self._noisy = config.noisy
        self.noisy = config.noisy

    def log(self, request: http.Request) -> None:
        if self._noisy:
            super().log(request)


class _ConnectionTracker(WrappingFactory):
    """Knows every open connection, so ``stop()`` can close them and wait."""

    noisy = False

    def __init__(self, site: Site) -> None:
        super().__init__(site)
        self._idle: list[Deferred[None]] = []

    def unregisterProtocol(self, p: ProtocolWrapper) -> None:  # noqa: N802
        super().unregisterProtocol(p)
        if not self.protocols:
            waiting, self._idle = self._idle, []
            for d in waiting:
                d.callback(None)

    def close_all(self) -> Deferred[None]:
        """Close every connection (after writing what is buffered); fires once
        none is left."""
        done: Deferred[None] = Deferred()
        if not self.protocols:
            done.callback(None)
            return done
        self._idle.append(done)
        for wrapper in list(self.protocols):
            if wrapper.transport is not None:
                wrapper.transport.loseConnection()
        return done

    def abort_all(self) -> None:
        """Drop every connection still open, without waiting for writes."""
        for wrapper in list(self.protocols):
            if wrapper.transport is not None:
                wrapper.transport.abortConnection()


class ChannelWebServer:
    """One channel's HTTP listener (see the module doc).

    ``routes`` maps normalised paths to handlers; a handler returns the body
    to send, or ``NOT_DONE_YET`` after :meth:`hold` (or when it will answer
    later itself).  Requests to any other path get 404.  Routes named in
    ``public`` skip the Basic-auth check (the health path always does).
    ``authorise`` (given the request and its query arguments) is a further
    check of credentials; like Basic auth, it runs before the body is read,
    and a False is answered 401.
    """

    #: How long closing connections may take to write what they have buffered.
    CLOSE_GRACE: ClassVar[float] = 2.0
    #: Longest ``stop()`` waits for connections to close.
    STOP_TIMEOUT: ClassVar[float] = 10.0

    def __init__(
        self,
        *,
        reactor: TimeTCPReactor,
        config: HttpRpcConfig,
        channel_id: str,
        log: Logger,
        statuses: StatusReporter,
        routes: dict[str, RouteHandler],
        public: Iterable[str] = (),
        on_timeout: Callable[[HeldRequest], Response | None] | None = None,
        authorise: Callable[[Request, dict[bytes, list[bytes]]], bool] | None = None,
    ) -> None:
        self._reactor = reactor
        self._config = config
        self._channel_id = channel_id
        self._log = log
        self._statuses = statuses
        self._routes = {normalise_path(p): h for p, h in routes.items()}
        self._health = normalise_path(config.health_path)
        self._public = {normalise_path(p) for p in public} | {self._health}
        self._on_timeout = on_timeout
        self._authorise = authorise
        self._held: dict[str, HeldRequest] = {}
        self._port: IListeningPort | None = None
        self._tracker: _ConnectionTracker | None = None
        self._stopping = False

    # -- what the channel and tests may look at ------------------------------

    @property
    def port(self) -> int | None:
        """The bound TCP port (the real one for ``web_port: 0``), or None."""
        if self._port is None:
            return None
        found: int | None = getattr(self._port.getHost(), "port", None)
        return found

    @property
    def pending(self) -> int:
        """How many requests are held open."""
        return len(self._held)

    def held(self, request_id: str) -> HeldRequest | None:
        return self._held.get(request_id)

    # -- lifecycle -----------------------------------------------------------

    async def start(self) -> None:
        site = _QuietSite(_Router(self), self._reactor, self._config, self._gate)
        self._tracker = _ConnectionTracker(site)
        endpoint = TCP4ServerEndpoint(
            self._reactor,
            self._config.web_port,
            interface=self._config.web_interface,
        )
        self._port = await endpoint.listen(self._tracker)
        self._log.info(
            "Channel {channel_id} listening for HTTP on port {port}, path {path}",
            channel_id=self._channel_id,
            port=self.port,
            path=self._config.path,
        )

    async def stop(self) -> None:
        """Stop listening, answer every held request, close every connection."""
        self._stopping = True
        port, self._port = self._port, None
        if port is not None:
            try:
                await maybeDeferred(port.stopListening)
            except Exception:
                self._log.failure("HTTP listener failed to stop")
        for request_id in list(self._held):
            self.finish(request_id, Response(STOPPING_CODE, b""), report=False)
        tracker, self._tracker = self._tracker, None
        if tracker is not None:
            await self._close_connections(tracker)

    async def _close_connections(self, tracker: _ConnectionTracker) -> None:
        closing = tracker.close_all()
        aborting = self._reactor.callLater(self.CLOSE_GRACE, tracker.abort_all)
        giving_up = self._reactor.callLater(self.STOP_TIMEOUT, closing.cancel)
        try:
            await closing
        except Exception:
            self._log.warn("HTTP connections did not close in time")
        finally:
            for timer in (aborting, giving_up):
                if timer.active():
                    timer.cancel()

    # -- requests --------------------------------------------------------------

    def dispatch(self, request: Request) -> RouteResult:
        path = normalise_path(request.path.decode("utf-8", "replace"))
        if self._stopping:
            return self.answer(request, Response(STOPPING_CODE, b""))
        if path == self._health and request.method in (b"GET", b"HEAD"):
            body = json.dumps({"pending_requests": len(self._held)})
            return self.answer(request, Response(200, body.encode()))
        handler = self._routes.get(path)
        if handler is None:
            return self.answer(request, error_response(404, "Not found"))
        return handler(request)

    def _gate(self, request: Request, method: bytes, uri: bytes) -> Refusal | None:
        """Credentials are checked before the body is read (see
        :mod:`junebug.http.server`); unknown paths and public routes need none."""
        raw_path, _, query = uri.partition(b"?")
        path = normalise_path(raw_path.decode("utf-8", "replace"))
        if self._stopping or path not in self._routes or path in self._public:
            return None
        if not self._authorised(request):
            challenge = f'Basic realm="{self._config.web_auth_domain}"'.encode()
            return _unauthorised(((b"WWW-Authenticate", challenge),))
        if self._authorise is not None and not self._authorise(
            request, parse_qs(query, keep_blank_values=True)
        ):
            return _unauthorised()
        return None

    def _authorised(self, request: Request) -> bool:
        username = self._config.web_username
        password = self._config.web_password
        if username is None or password is None:
            return True
        given_user = request.getUser() or b""
        given_password = request.getPassword() or b""
        return hmac.compare_digest(given_user, username.encode()) & hmac.compare_digest(
            given_password, password.encode()
        )

    @staticmethod
    def answer(request: Request, response: Response) -> bytes:
        """Set the status and content type of an immediate answer; its body."""
        request.setResponseCode(response.code)
        request.setHeader(b"Content-Type", response.content_type.encode())
        return response.body

    def hold(self, request: Request, request_id: str | None = None) -> HeldRequest:
        """Keep ``request`` open until :meth:`finish` or its timeout."""
        request_id = request_id or generate_id()
        held = HeldRequest(request_id, request, self._reactor.seconds())
        held.timer = self._reactor.callLater(
            self._config.request_timeout, self._expire, request_id
        )
        self._held[request_id] = held
        request.notifyFinish().addBoth(self._gone, request_id, request)
        return held

    def _gone(self, result: object, request_id: str, request: Request) -> None:
        """The request finished or its client went away: forget it."""
        held = self._held.get(request_id)
        if held is None or held.request is not request:
            return
        del self._held[request_id]
        if held.timer is not None and held.timer.active():
            held.timer.cancel()
        self._log.info(
            "Channel {channel_id}: the client of request {request_id} went away "
            "before the reply",
            channel_id=self._channel_id,
            request_id=request_id,
        )

    def _expire(self, request_id: str) -> None:
        held = self._held.get(request_id)
        if held is None:
            return
        held.timer = None
        elapsed = self._reactor.seconds() - held.started
        self._log.warn(
            "Channel {channel_id}: no reply to request {request_id} within "
            "{timeout}s; timing it out",
            channel_id=self._channel_id,
            request_id=request_id,
            timeout=self._config.request_timeout,
        )
        response = self._on_timeout(held) if self._on_timeout else None
        if response is None:
            response = Response(
                self._config.request_timeout_status_code,
                self._config.request_timeout_body.encode("utf-8"),
                "text/plain; charset=utf-8",
            )
        self.finish(request_id, response, report=False)
        self._statuses.report(
            "response",
            "down",
            "timeout",
            "Response timed out",
            details={"response_time": elapsed},
            reasons=[
                f"Response took longer than {self._config.request_timeout} seconds"
            ],
        )

    def finish(
        self,
        request_id: str,
        response: Response,
        *,
        headers: dict[str, str] | None = None,
        report: bool = True,
    ) -> HeldRequest | None:
        """Answer a held request; None if it is not held (any more).

        With ``report``, a 2xx/3xx answer publishes a ``response`` status
        according to how long the reply took.
        """
        held = self._held.pop(request_id, None)
        if held is None:
            return None
        if held.timer is not None and held.timer.active():
            held.timer.cancel()
        request = held.request
        for name, value in (headers or {}).items():
            request.setHeader(name.encode(), value.encode())
        try:
            request.write(self.answer(request, response))
            request.finish()
        except Exception:
            self._log.failure(
                "Channel {channel_id}: could not answer request {request_id}",
                channel_id=self._channel_id,
                request_id=request_id,
            )
            return None
        if report and 200 <= response.code < 400:
            self._report_response_time(self._reactor.seconds() - held.started)
        return held

    def _report_response_time(self, elapsed: float) -> None:
        config = self._config
        if elapsed > config.response_time_down:
            self._statuses.report(
                "response",
                "down",
                "very_slow_response",
                "Very slow response",
                details={"response_time": elapsed},
                reasons=[
                    f"Response took longer than {config.response_time_down} seconds"
                ],
            )
        elif elapsed > config.response_time_degraded:
            self._statuses.report(
                "response",
                "degraded",
                "slow_response",
                "Slow response",
                details={"response_time": elapsed},
                reasons=[
                    f"Response took longer than {config.response_time_degraded} seconds"
                ],
            )
        else:
            self._statuses.report(
                "response",
                "ok",
                "response_sent",
                "Response sent",
                details={"response_time": elapsed},
            )


def _unauthorised(headers: tuple[tuple[bytes, bytes], ...] = ()) -> Refusal:
    return Refusal(401, "Unauthorized", "unauthorized", "Unauthorized", headers)


def json_response(code: int, body: Any) -> Response:
    return Response(code, json.dumps(body).encode("utf-8"))


def error_response(code: int, message: str, **extra: Any) -> Response:
    return json_response(code, {"error": message, **extra})


def request_args(request: Request) -> tuple[dict[str, str], dict[str, list[str]]]:
    """The query (and form) parameters, decoded as UTF-8: ``(values, errors)``.

    The first value of each parameter is kept.  A parameter that is not valid
    UTF-8 is listed under ``errors["invalid_encoding"]``.
    """
    values: dict[str, str] = {}
    errors: dict[str, list[str]] = {}
    for raw_name, raw_values in (request.args or {}).items():
        try:
            name = raw_name.decode("utf-8")
            value = raw_values[0].decode("utf-8") if raw_values else ""
        except UnicodeDecodeError:
            errors.setdefault("invalid_encoding", []).append(
                raw_name.decode("utf-8", "replace")
            )
            continue
        values[name] = value
    return values, errors


def describe_request(request: Request) -> dict[str, Any]:
    """A JSON-able summary of a request, for error answers and statuses."""
    headers = {
        name.decode("latin-1"): [v.decode("latin-1") for v in values]
        for name, values in request.requestHeaders.getAllRawHeaders()
        if name.lower() != b"authorization"
    }
    return {
        "method": request.method.decode("latin-1"),
        "path": request.path.decode("utf-8", "replace"),
        "uri": request.uri.decode("utf-8", "replace"),
        "headers": headers,
    }
