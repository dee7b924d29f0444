"""Outgoing HTTP: JSON POSTs to ``mo_url`` / ``event_url`` / ``status_url``.

:class:`HttpClient` makes requests with a :class:`~twisted.web.client.Agent`
over its own persistent :class:`~twisted.web.client.HTTPConnectionPool`,
built from an injected reactor.  It calls the agent directly (no treq
wrapper: no cookie jar, no per-request URL object, no content decoding), as
these posts are on the path of every message.  It never raises for network
failures, timeouts or non-2xx answers: :meth:`HttpClient.post_json` returns
an :class:`HttpResult` and the caller decides what to log.  Nothing it
returns contains a URL's password.

Authentication, as in the original Junebug: userinfo in the URL
(``http://user:pass@host/``) is removed from the URL and sent as HTTP Basic
(percent-decoded); a token is sent as ``Authorization: Token <token>``.  When a
URL has userinfo *and* a token is given, only the Basic header is sent (the
original overwrote the Token header with Basic; we keep that).

Differences from the original: redirects are not followed (a 3xx is a non-2xx
result), cookies are never stored between requests, the timeout covers reading
the response body too, and at most :data:`MAX_POST_BODY_READ` bytes of a
response are read (the connection is dropped after that).
"""

from __future__ import annotations

import base64
import codecs
import json
import re
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Final
from typing import Protocol as TypingProtocol
from urllib.parse import unquote, urlsplit, urlunsplit

import attrs
import hyperlink
from twisted.internet.defer import CancelledError, Deferred, gatherResults, succeed
from twisted.internet.interfaces import IConsumer, IDelayedCall
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from twisted.web.client import (
    Agent,
    BrowserLikePolicyForHTTPS,
    HTTPConnectionPool,
    ResponseDone,
)
from twisted.web.http import RESPONSES, PotentialDataLoss
from twisted.web.http_headers import Headers
from twisted.web.iweb import UNKNOWN_LENGTH, IAgent, IBodyProducer, IResponse
from typing_extensions import override
from zope.interface import implementer

from junebug.http.connections import USER_AGENT, ConnectionPool
from junebug.http.networks import (
    CallbackNetworks,
    CallbackRefused,
    GuardedEndpointFactory,
)
from junebug.http.plain import PlainRequest
from junebug.messages import format_timestamp
from junebug.reactors import TimeTCPReactor
from junebug.tls import TlsSettings

#: Per-host limit of idle persistent connections kept in the pool.
MAX_PERSISTENT_PER_HOST: Final = 20
#: How much of a response body an :class:`HttpResult` keeps (bytes).
RESULT_BODY_LIMIT: Final = 1024
#: How much of a POST's response body is read before dropping the connection.
MAX_POST_BODY_READ: Final = 64 * 1024
#: How much of a GET's (JSON) response body may be read.
MAX_GET_BODY_READ: Final = 4 * 1024 * 1024
#: Error strings are cut to this many characters.
ERROR_LIMIT: Final = 1024
DEFAULT_TIMEOUT: Final = 10.0
_JSON_CONTENT_TYPE: Final = b"Content-Type: application/json\r\n"
_USER_AGENT: Final = USER_AGENT.encode("ascii")
_BAD_HEADER_VALUE: Final = re.compile(rb"[\r\n\x00]")

# ``scheme://user:password@`` anywhere in a text.  The password runs to the
# last ``@`` before whitespace, a slash or a quote, so unencoded ``@`` in
# passwords are hidden too (at worst this hides a little more than needed).
_USERINFO_IN_TEXT = re.compile(
    r"(?P<prefix>\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s/:@'\"<>]*):"
    r"(?P<password>[^\s/'\"<>]*)@"
)


class HttpError(Exception):
    """A request made with :meth:`HttpClient.get_json` failed (message redacted)."""


class _TimeoutExpiredError(Exception):
    """The client-side timeout of one request expired."""


@attrs.frozen
class HttpResult:
    """The outcome of one POST.

    ``ok`` is true for a 2xx answer.  ``code`` is ``None`` when no answer was
    received, in which case ``error`` says why (``"ConnectionRefusedError: ..."``,
    ``"timeout after 10s"``).  ``body`` is the start of the answer's body.
    ``refused`` is true when no request was made because the URL, or every
    address of its host, is not allowed (:mod:`junebug.http.networks`):
    trying again cannot help.
    """

    ok: bool
    code: int | None
    body: str = ""
    error: str | None = None
    refused: bool = False


class Outcome(TypingProtocol):
    """What :func:`short_reason` reads of an :class:`HttpResult`."""

    @property
    def code(self) -> int | None: ...
    @property
    def error(self) -> str | None: ...


def short_reason(result: Outcome) -> str:
    """What went wrong, for logs and API answers: the error, or the status
    code and its standard phrase (``HTTP 404 Not Found``), never the body."""
    if result.error is not None:
        return result.error
    return f"HTTP {result.code} {status_phrase(result.code)}".rstrip()


def status_phrase(code: int | None) -> str:
    """The standard phrase of an HTTP status code (``Not Found``), or ``""``."""
    return RESPONSES.get(code or 0, b"").decode("ascii", "replace")


def redact_text(text: str) -> str:
    """Replace the password of every ``scheme://user:password@`` in ``text``."""
    return _USERINFO_IN_TEXT.sub(r"\g<prefix>:***@", text)


def _split_netloc(netloc: str) -> tuple[str | None, str]:
    userinfo, at, hostport = netloc.rpartition("@")
    return (userinfo if at else None), hostport


def redact_url(url: str) -> str:
    """``url`` with the password of its userinfo (if any) replaced by ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact_text(url)
    userinfo, hostport = _split_netloc(parts.netloc)
    if userinfo is None or ":" not in userinfo:
        return url
    user = userinfo.split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{hostport}"))


def split_credentials(url: str) -> tuple[str, tuple[str, str] | None]:
    """Remove userinfo from ``url``; return it percent-decoded as (user, password).

    A userinfo without ``:`` gives an empty password.
    """
    parts = urlsplit(url)
    userinfo, hostport = _split_netloc(parts.netloc)
    if userinfo is None:
        return url, None
    user, _, password = userinfo.partition(":")
    bare = urlunsplit(parts._replace(netloc=hostport))
    return bare, (unquote(user), unquote(password))


def basic_auth_header(user: str, password: str) -> bytes:
    """The value of an ``Authorization`` header for HTTP Basic."""
    token = base64.b64encode(f"{user}:{password}".encode())
    return b"Basic " + token


def _json_default(value: object) -> Any:
    if isinstance(value, datetime):
        return format_timestamp(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


#: Built once: ``json.dumps`` with ``default=`` builds a new encoder per call.
_ENCODER = json.JSONEncoder(default=_json_default)


def encode_json(body: Any) -> bytes:
    """Serialise ``body`` as UTF-8 JSON (datetimes in vumi's format)."""
    return _ENCODER.encode(body).encode("utf-8")


def describe_error(error: BaseException | Failure) -> str:
    """``"<ErrorClass>: <text>"``; wrapped reasons (``ResponseFailed``...) expanded."""
    exc = error.value if isinstance(error, Failure) else error
    reasons = getattr(exc, "reasons", None)
    if isinstance(reasons, list) and reasons:
        text = "; ".join(describe_error(reason) for reason in reasons)
    else:
        text = str(exc)
    described = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return redact_text(described)[:ERROR_LIMIT]


def _involves_cancel(exc: BaseException) -> bool:
    if isinstance(exc, CancelledError):
        return True
    reasons = getattr(exc, "reasons", None)
    return isinstance(reasons, list) and any(
        isinstance(reason, Failure) and reason.check(CancelledError) is not None
        for reason in reasons
    )


def _decode_prefix(data: bytes, limit: int) -> str:
    """Decode at most ``limit`` bytes of UTF-8, dropping a cut trailing character."""
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    return decoder.decode(data[:limit], final=len(data) <= limit)


@implementer(IBodyProducer)
class _BytesProducer:
    """Writes a request body in one go (no cooperator, so no global reactor)."""

    def __init__(self, body: bytes) -> None:
        self._body = body
        self.length = len(body)

    def startProducing(self, consumer: IConsumer) -> Deferred[None]:  # noqa: N802
        consumer.write(self._body)
        return succeed(None)

    def pauseProducing(self) -> None:  # noqa: N802
        pass

    def resumeProducing(self) -> None:  # noqa: N802
        pass

    def stopProducing(self) -> None:  # noqa: N802
        pass


def request_target(url: str) -> bytes:
    """``url`` as the bytes an agent takes: ASCII as it is, otherwise as a URI
    (an IDNA host, percent-encoded path and query)."""
    try:
        return url.encode("ascii")
    except UnicodeEncodeError:
        return hyperlink.parse(url).to_uri().to_text().encode("ascii")


class _BoundedBody(Protocol):
    """Collects up to ``limit`` bytes of a body; fires ``(bytes, truncated)``."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._chunks: list[bytes] = []
        self._size = 0
        self.finished: Deferred[tuple[bytes, bool]] = Deferred(self._cancel)
        self._done = False

    def _finish(self, truncated: bool) -> None:
        self._done = True
        self.finished.callback((b"".join(self._chunks), truncated))

    def _drop_connection(self) -> None:
        if self.transport is not None:
            self.transport.loseConnection()

    def _cancel(self, _: Deferred[tuple[bytes, bool]]) -> None:
        self._done = True
        self._drop_connection()

    @override
    def dataReceived(self, data: bytes) -> None:
        if self._done:
            return
        room = self._limit - self._size
        if len(data) > room:
            self._chunks.append(data[:room])
            self._size = self._limit
            self._finish(truncated=True)
            self._drop_connection()
            return
        self._chunks.append(data)
        self._size += len(data)

    @override
    def connectionLost(self, reason: Failure | None = None) -> None:
        if self._done:
            return
        if reason is None or reason.check(ResponseDone, PotentialDataLoss):
            self._finish(truncated=False)
        else:
            self._done = True
            self.finished.errback(reason)


def read_body(response: IResponse, limit: int) -> Deferred[tuple[bytes, bool]]:
    """Read at most ``limit`` bytes of ``response``'s body: ``(data, truncated)``."""
    if response.length is not UNKNOWN_LENGTH and response.length == 0:
        return succeed((b"", False))
    reader = _BoundedBody(limit)
    response.deliverBody(reader)
    return reader.finished


def _failed(exc: Exception) -> HttpResult:
    """The result of a request that raised ``exc`` (a timeout, a refused
    callback address, a connection error)."""
    if isinstance(exc, _TimeoutExpiredError):
        return HttpResult(ok=False, code=None, error=str(exc))
    if isinstance(exc, CallbackRefused):
        return HttpResult(ok=False, code=None, error=f"refused: {exc}", refused=True)
    return HttpResult(ok=False, code=None, error=describe_error(exc))


def _checked_url(url: str) -> tuple[str, tuple[str, str] | None] | HttpResult:
    """``url`` without its userinfo, and that userinfo; or the refusal of a
    URL that cannot be used (bad userinfo, not http(s))."""
    try:
        bare_url, credentials = split_credentials(url)
    except ValueError as exc:
        return HttpResult(ok=False, code=None, error=describe_error(exc), refused=True)
    if not bare_url[:8].lower().startswith(("http://", "https://")):
        return HttpResult(
            ok=False,
            code=None,
            error="refused: not an http:// or https:// URL",
            refused=True,
        )
    return bare_url, credentials


class HttpClient:
    """JSON over HTTP with a persistent connection pool (see the module doc).

    ``agent`` replaces the pooled :class:`~twisted.web.client.Agent` (tests).
    HTTPS servers' certificates are checked against the platform's CAs, or
    only those of the PEM bundle ``ca_file`` (read here, once).  With
    ``networks`` enabled, every new connection of a POST is checked against
    the operator's callback networks (see :mod:`junebug.http.networks`).
    """

    def __init__(
        self,
        reactor: TimeTCPReactor,
        *,
        agent: IAgent | None = None,
        max_persistent_per_host: int = MAX_PERSISTENT_PER_HOST,
        ca_file: str | None = None,
        networks: CallbackNetworks | None = None,
    ) -> None:
        self._reactor = reactor
        self._pool = HTTPConnectionPool(reactor, persistent=True)
        self._pool.maxPersistentPerHost = max_persistent_per_host
        guarded = networks if networks is not None and networks.enabled else None
        #: HTTP and HTTPS POSTs go through this lighter pool (not with an
        #: injected agent, whose requests tests inspect).
        self._posts: ConnectionPool | None = None
        #: The POSTs the light pool does not take (URLs it cannot write as
        #: they are); guarded like the pool.  GETs (the operator's own
        #: RabbitMQ management API) are not callbacks and use ``_agent``.
        self._post_agent: IAgent | None = None
        self._post_pool: HTTPConnectionPool | None = None
        if agent is None:
            # One trust root for both: the platform's CAs, or ca_file's.
            tls = TlsSettings(ca_file)
            policy = BrowserLikePolicyForHTTPS(trustRoot=tls.trust_root)
            agent = Agent(reactor, contextFactory=policy, pool=self._pool)
            self._posts = ConnectionPool(
                reactor, max_persistent_per_host, tls=tls, networks=guarded
            )
            if guarded is not None:
                self._post_pool = HTTPConnectionPool(reactor, persistent=True)
                self._post_pool.maxPersistentPerHost = max_persistent_per_host
                self._post_agent = Agent.usingEndpointFactory(
                    reactor,
                    GuardedEndpointFactory(reactor, guarded, policy),
                    pool=self._post_pool,
                )
        self._agent = agent

    def close(self) -> Deferred[None]:
        """Close idle pooled connections (fires when they are closed)."""
        closing: list[Deferred[None]] = [self._pool.closeCachedConnections()]
        if self._post_pool is not None:
            closing.append(self._post_pool.closeCachedConnections())
        if self._posts is not None:
            closing.append(self._posts.close())
        return gatherResults(closing).addCallback(lambda _: None)

    async def _with_timeout(
        self, timeout: float, work: Callable[[], Deferred[Any]]
    ) -> Any:
        """Await ``work()``; cancel it after ``timeout`` seconds.

        Raises :class:`_TimeoutExpiredError` on timeout, ``CancelledError`` if
        the caller cancelled, otherwise whatever the work raised.
        """
        timed_out = False
        running = work()

        def expire() -> None:
            nonlocal timed_out
            timed_out = True
            running.cancel()

        call: IDelayedCall = self._reactor.callLater(timeout, expire)
        try:
            return await running
        except Exception as exc:
            if timed_out:
                raise _TimeoutExpiredError(f"timeout after {timeout:g}s") from None
            if _involves_cancel(exc):
                raise CancelledError() from exc
            raise
        finally:
            if call.active():
                call.cancel()

    async def _request(
        self,
        method: str,
        url: str,
        headers: Headers,
        data: bytes | None,
        limit: int,
        agent: IAgent | None = None,
    ) -> tuple[IResponse, bytes, bool]:
        if not url.lower().startswith(("http://", "https://")):
            raise ValueError(f"not an http(s) URL: {url!r}")
        producer = None if data is None else _BytesProducer(data)
        headers.setRawHeaders(b"User-Agent", [_USER_AGENT])
        response: IResponse = await (agent or self._agent).request(
            method.encode("ascii"), request_target(url), headers, producer
        )
        body, truncated = await read_body(response, limit)
        return response, body, truncated

    async def _agent_post(
        self, url: str, headers: Headers, data: bytes
    ) -> tuple[int, bytes, bool]:
        response, raw, truncated = await self._request(
            "POST", url, headers, data, MAX_POST_BODY_READ, self._post_agent
        )
        return int(response.code), raw, truncated

    def _agent_request(
        self,
        method: str,
        url: str,
        fields: list[tuple[bytes, bytes]],
        data: bytes | None,
    ) -> Callable[[], Deferred[tuple[int, bytes, bool]]]:
        """A plain request the light pool does not take, through the agent."""
        headers = Headers()
        for name, value in fields:
            headers.addRawHeader(name, value)
        agent = self._post_agent or self._agent

        async def made() -> tuple[int, bytes, bool]:
            response, raw, truncated = await self._request(
                method, url, headers, data, MAX_POST_BODY_READ, agent
            )
            return int(response.code), raw, truncated

        return lambda: Deferred.fromCoroutine(made())

    async def post_json(
        self,
        url: str,
        body: Any,
        *,
        token: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        breaker_key: str | None = None,
        about: Mapping[str, str] | None = None,
    ) -> HttpResult:
        """POST ``body`` as JSON to ``url``; never raises for delivery problems.

        ``about`` (log fields of what is posted) is for posters that retry
        and log; this one does neither.

        Userinfo in ``url`` is sent as HTTP Basic; otherwise ``token`` (if any) as
        ``Authorization: Token <token>``.  ``breaker_key`` is for the poster
        interface only (:class:`junebug.http.delivery.HttpDelivery` has breakers,
        this client has none).
        """
        data = encode_json(body)
        checked = _checked_url(url)
        if isinstance(checked, HttpResult):
            return checked
        bare_url, credentials = checked
        authorization = None
        if credentials is not None:
            authorization = basic_auth_header(*credentials)
        elif token is not None:
            authorization = f"Token {token}".encode()
        target = None if self._posts is None else self._posts.target(bare_url)
        if target is not None and (
            authorization is None or not _BAD_HEADER_VALUE.search(authorization)
        ):
            lines = _JSON_CONTENT_TYPE
            if authorization is not None:
                lines += b"Authorization: " + authorization + b"\r\n"
            posts = self._posts
            assert posts is not None
            work = lambda: Deferred.fromCoroutine(  # noqa: E731
                posts.post(target, lines, data, MAX_POST_BODY_READ)
            )
        else:
            headers = Headers({b"Content-Type": [b"application/json"]})
            if authorization is not None:
                headers.setRawHeaders(b"Authorization", [authorization])
            work = lambda: Deferred.fromCoroutine(  # noqa: E731
                self._agent_post(bare_url, headers, data)
            )
        try:
            code, raw, _truncated = await self._with_timeout(timeout, work)
        except CancelledError:
            raise
        except Exception as exc:
            return _failed(exc)
        return HttpResult(
            ok=200 <= code < 300,
            code=code,
            body=_decode_prefix(raw, RESULT_BODY_LIMIT),
        )

    async def send_request(
        self,
        url: str,
        request: PlainRequest,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        breaker_key: str | None = None,
    ) -> HttpResult:
        """Make a :class:`~junebug.http.plain.PlainRequest` to ``url``; never
        raises for delivery problems (as :meth:`post_json`).

        Userinfo in ``url`` is sent as HTTP Basic.  A 2xx whose body is not
        ``request.expect`` (when set) is a failed result with no code, so it
        is retried.  ``breaker_key`` is for the poster interface only.
        """
        checked = _checked_url(url)
        if isinstance(checked, HttpResult):
            return checked
        bare_url, credentials = checked
        fields = [
            (name.encode("latin-1"), value.encode("utf-8"))
            for name, value in request.headers
        ]
        if credentials is not None:
            fields.append((b"Authorization", basic_auth_header(*credentials)))
        if request.content_type is not None:
            fields.append((b"Content-Type", request.content_type.encode("latin-1")))
        data = None if request.data is None else request.data.encode("utf-8")
        target = None if self._posts is None else self._posts.target(bare_url)
        if target is not None and not any(
            _BAD_HEADER_VALUE.search(name + value) or b":" in name
            for name, value in fields
        ):
            posts = self._posts
            assert posts is not None
            lines = b"".join(name + b": " + value + b"\r\n" for name, value in fields)
            method = request.method.encode("ascii")
            work = lambda: Deferred.fromCoroutine(  # noqa: E731
                posts.request(target, method, lines, data, MAX_POST_BODY_READ)
            )
        else:
            work = self._agent_request(request.method, bare_url, fields, data)
        try:
            code, raw, _truncated = await self._with_timeout(timeout, work)
        except CancelledError:
            raise
        except Exception as exc:
            return _failed(exc)
        body = _decode_prefix(raw, RESULT_BODY_LIMIT)
        ok = 200 <= code < 300
        if ok and request.expect is not None and body.strip() != request.expect:
            return HttpResult(
                ok=False,
                code=None,
                body=body,
                error=f"HTTP {code} without {request.expect!r}",
            )
        return HttpResult(ok=ok, code=code, body=body)

    async def get_json(
        self,
        url: str,
        *,
        auth: tuple[str, str] | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> tuple[int, Any]:
        """GET ``url``; return ``(status code, decoded JSON body or None)``.

        ``auth`` (or else userinfo in ``url``) is sent as HTTP Basic.  Raises
        :class:`HttpError` (with a redacted message) when no complete answer is
        received: connection failures, timeouts, bodies over
        :data:`MAX_GET_BODY_READ` bytes.  A body that is not JSON gives ``None``.
        """
        try:
            bare_url, credentials = split_credentials(url)
        except ValueError as exc:
            raise HttpError(describe_error(exc)) from None
        credentials = auth if auth is not None else credentials
        headers = Headers({b"Accept": [b"application/json"]})
        if credentials is not None:
            headers.setRawHeaders(b"Authorization", [basic_auth_header(*credentials)])
        try:
            response, raw, truncated = await self._with_timeout(
                timeout,
                lambda: Deferred.fromCoroutine(
                    self._request("GET", bare_url, headers, None, MAX_GET_BODY_READ)
                ),
            )
        except CancelledError:
            raise
        except _TimeoutExpiredError as exc:
            raise HttpError(str(exc)) from None
        except Exception as exc:
            raise HttpError(describe_error(exc)) from None
        if truncated:
            raise HttpError(f"response body larger than {MAX_GET_BODY_READ} bytes")
        try:
            value = json.loads(raw.decode("utf-8"))
        except ValueError:
            value = None
        return int(response.code), value
