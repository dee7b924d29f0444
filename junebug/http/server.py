"""The HTTP server every Junebug port uses: the API, ``jb message-api`` and
the channels' webhook ports.

twisted.web parses requests; :class:`LimitedSite` and its channel add the
limits a server facing the internet needs, in one place:

- a body larger than ``max_body_size`` is refused with 413 before it is read
  (by its ``Content-Length``), or as soon as a chunked body passes the limit;
  bodies are kept in memory (never spooled to a temporary file);
- a ``gate`` sees each request once its headers are in, before its body is
  read: that is where authentication is checked (401 without reading);
- the request line and headers must arrive within ``header_timeout`` seconds
  of the connection opening (or of the previous answer on a kept-alive
  connection); a late header is answered 408, an idle connection is closed;
- at most ``max_connections`` connections are open at once; one more is
  answered 503 and closed;
- the access log never shows a query's ``password``, ``pass`` or ``token``
  (the Kannel and Jasmin send routes carry credentials there);
- two ``Transfer-Encoding`` headers, or one that is not ``chunked``, are
  refused (RFC 9112 6.1: a request whose framing is ambiguous must not be
  guessed at), as twisted.web refuses other malformed requests.

Every refusal is written in the port's own error format (``error_body``),
with ``Connection: close``, and the connection is closed: nothing more of
that connection is read.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from http import HTTPStatus
from io import BytesIO
from typing import Any

import attrs
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure
from twisted.web.http import HTTPChannel, combinedLogFormatter
from twisted.web.resource import IResource
from twisted.web.server import Request, Site


@attrs.frozen
class ServerLimits:
    """What one HTTP port accepts (see the module doc)."""

    max_body_size: int = 1_048_576
    header_timeout: float = 30.0
    #: 0: no limit.
    max_connections: int = 1024


@attrs.frozen
class Refusal:
    """A request answered before its body is read (or instead of it)."""

    code: int
    #: A short error name, e.g. ``BodyTooLarge``.
    name: str
    #: What the envelope's ``description`` says, e.g. ``request body too large``.
    description: str
    message: str
    headers: tuple[tuple[bytes, bytes], ...] = ()


#: Renders a refusal in a port's error format: ``(content type, body)``.
ErrorBody = Callable[[Refusal], tuple[bytes, bytes]]
#: Looks at a request whose headers are in (its method and URI, path and
#: query, are given: the request has not parsed them yet); a Refusal answers
#: it unread.
Gate = Callable[[Any, bytes, bytes], "Refusal | None"]

BAD_REQUEST = Refusal(400, "BadRequest", "bad request", "The request is malformed")
HEADER_TIMEOUT = Refusal(
    408,
    "RequestTimeout",
    "request timeout",
    "The request header did not arrive in time",
)
TOO_MANY_CONNECTIONS = Refusal(
    503,
    "ServiceUnavailable",
    "too many connections",
    "Too many connections are open; try again later",
)


def body_too_large(limit: int) -> Refusal:
    return Refusal(
        413,
        "BodyTooLarge",
        "request body too large",
        f"Request body is larger than {limit} bytes",
    )


def response_bytes(refusal: Refusal, error_body: ErrorBody) -> bytes:
    """A whole HTTP/1.1 response for ``refusal``, closing the connection."""
    content_type, body = error_body(refusal)
    phrase = HTTPStatus(refusal.code).phrase
    lines = [
        f"HTTP/1.1 {refusal.code} {phrase}".encode("latin-1"),
        b"Content-Type: " + content_type,
        b"Content-Length: " + str(len(body)).encode("ascii"),
        b"Connection: close",
        *(name + b": " + value for name, value in refusal.headers),
    ]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


class LimitedChannel(HTTPChannel):
    """One connection of a :class:`LimitedSite`."""

    site: LimitedSite
    _host: Any = None
    _peer: Any = None
    _header_timer: IDelayedCall | None = None
    _header_deadline = 0.0
    _awaiting_header = False
    #: Whether a byte of the awaited request has arrived.
    _header_started = False
    _transfer_encoding_seen = False
    _body_received = 0
    _refused = False

    def connectionMade(self) -> None:  # noqa: N802 - the Twisted name
        super().connectionMade()
        self.site.open_connections += 1
        # Behind a WrappingFactory the transport is no ITCPTransport, so
        # HTTPChannel does not turn Nagle's algorithm off itself.
        set_no_delay = getattr(self.transport, "setTcpNoDelay", None)
        if set_no_delay is not None:
            set_no_delay(True)
        self._await_header()

    def connectionLost(self, reason: Failure = connectionDone) -> None:  # noqa: N802 - the Twisted name
        self.site.open_connections -= 1
        self._stop_header_timer()
        super().connectionLost(reason)

    # twisted.web asks for both addresses on every request; the transport
    # builds a new address object each time, and getHost makes a system call.
    def getHost(self) -> Any:  # noqa: N802 - the Twisted name
        if self._host is None:
            self._host = super().getHost()
        return self._host

    def getPeer(self) -> Any:  # noqa: N802 - the Twisted name
        if self._peer is None:
            self._peer = super().getPeer()
        return self._peer

    # -- the header deadline -------------------------------------------------
    # One timer per connection, not one per request: a request only moves the
    # deadline, and the timer, when it fires early, waits for the rest.

    def _await_header(self) -> None:
        self._header_started = False
        timeout = self.site.limits.header_timeout
        if timeout <= 0:
            return
        self._awaiting_header = True
        self._header_deadline = self.site.reactor.seconds() + timeout
        if self._header_timer is None:
            self._header_timer = self.callLater(timeout, self._header_due)

    def _header_received(self) -> None:
        self._awaiting_header = False

    def _stop_header_timer(self) -> None:
        self._awaiting_header = False
        timer, self._header_timer = self._header_timer, None
        if timer is not None and timer.active():
            timer.cancel()

    def _header_due(self) -> None:
        self._header_timer = None
        if not self._awaiting_header:
            return
        remaining = self._header_deadline - self.site.reactor.seconds()
        if remaining > 0:
            self._header_timer = self.callLater(remaining, self._header_due)
        elif self._header_started:
            self.refuse(HEADER_TIMEOUT)
        else:
            self._refused = True
            self.loseConnection()

    def dataReceived(self, data: bytes) -> None:  # noqa: N802 - the Twisted name
        if self._refused:
            return
        if self._awaiting_header:
            self._header_started = True
        super().dataReceived(data)

    def requestDone(self, request: Any) -> None:  # noqa: N802 - the Twisted name
        # Armed first: the next pipelined request may be parsed in super().
        if self.persistent:
            self._await_header()
        super().requestDone(request)

    # -- headers and body ----------------------------------------------------

    def headerReceived(self, line: bytes) -> bool:  # noqa: N802 - the Twisted name
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"transfer-encoding":
            if self._transfer_encoding_seen or value.strip().lower() != b"chunked":
                self.refuse(BAD_REQUEST)
                return False
            self._transfer_encoding_seen = True
        ok: bool = super().headerReceived(line)
        return ok

    def allHeadersReceived(self) -> None:  # noqa: N802 - the Twisted name
        self._header_received()
        self._transfer_encoding_seen = False
        self._body_received = 0
        limit = self.site.limits.max_body_size
        if self.length is not None and self.length > limit:
            self.refuse(body_too_large(limit))
            return
        gate = self.site.gate
        if gate is not None:
            # Set by HTTPChannel from the request line (no public name).
            method: bytes = getattr(self, "_command", b"")
            uri: bytes = getattr(self, "_path", b"")
            refusal = gate(self.requests[-1], method, uri)
            if refusal is not None:
                self.refuse(refusal)
                return
        super().allHeadersReceived()

    def body_chunk(self, size: int) -> bool:
        """Count ``size`` more body bytes; False (and refused) past the limit."""
        if self._refused:
            return False
        self._body_received += size
        limit = self.site.limits.max_body_size
        if self._body_received > limit:
            self.refuse(body_too_large(limit))
            return False
        return True

    def allContentReceived(self) -> None:  # noqa: N802 - the Twisted name
        if not self._refused:
            super().allContentReceived()

    # -- refusing ------------------------------------------------------------

    def refuse(self, refusal: Refusal) -> None:
        """Answer ``refusal`` and close; the rest of the connection is unread."""
        if self._refused:
            return
        self._refused = True
        self._stop_header_timer()
        if self.transport is not None:
            self.transport.write(response_bytes(refusal, self.site.error_body))
        self.loseConnection()

    def _respondToBadRequestAndDisconnect(self) -> None:  # noqa: N802
        """twisted.web's answer to a malformed request, in the port's format."""
        self.refuse(BAD_REQUEST)


#: A secret in a query string (Kannel's and Jasmin's send credentials).
_QUERY_SECRET = re.compile(r"([?&](?:password|pass|token)=)[^&\s\"]*", re.IGNORECASE)


def access_log_line(timestamp: str, request: Any) -> str:
    """twisted.web's combined access log line, with the value of a query's
    ``password``, ``pass`` or ``token`` replaced by ``***``."""
    line: str = combinedLogFormatter(timestamp, request)
    return _QUERY_SECRET.sub(r"\1***", line)


class LimitedRequest(Request):
    """A request whose body counts against its channel's limit."""

    channel: Any

    def handleContentChunk(self, data: bytes) -> None:  # noqa: N802
        channel = self.channel
        if isinstance(channel, LimitedChannel) and not channel.body_chunk(len(data)):
            return
        super().handleContentChunk(data)

    def _handleStar(self) -> None:  # noqa: N802 - the twisted.web name
        """``OPTIONS *`` goes to the resource, as any other target: twisted.web
        would answer it itself, outside the port's format."""
        site = self.site
        assert site is not None
        try:
            self.render(site.resource)
        except BaseException:
            self.processingFailed(Failure())


class _Overloaded(Protocol):
    """What a connection over the limit gets: a 503, then the door."""

    def __init__(self, answer: bytes) -> None:
        self._answer = answer

    def connectionMade(self) -> None:  # noqa: N802 - the Twisted name
        assert self.transport is not None
        self.transport.write(self._answer)
        self.transport.loseConnection()


class LimitedSite(Site):
    """A Site with :class:`ServerLimits`, a gate and an error format."""

    protocol = LimitedChannel  # type: ignore[assignment]

    def __init__(
        self,
        resource: IResource,
        *,
        reactor: IReactorTime,
        limits: ServerLimits,
        error_body: ErrorBody,
        gate: Gate | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("logFormatter", access_log_line)
        super().__init__(
            resource, requestFactory=LimitedRequest, reactor=reactor, **kwargs
        )
        self.limits = limits
        self.error_body = error_body
        self.gate = gate
        self.open_connections = 0

    def buildProtocol(self, addr: Any) -> Any:  # noqa: N802 - the Twisted name
        limit = self.limits.max_connections
        if limit and self.open_connections >= limit:
            return _Overloaded(response_bytes(TOO_MANY_CONNECTIONS, self.error_body))
        return super().buildProtocol(addr)

    def getContentFile(self, length: int | None) -> BytesIO:  # noqa: N802
        """Bodies stay in memory: none is larger than ``max_body_size``."""
        return BytesIO()
