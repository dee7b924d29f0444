"""Tests for junebug.http.client."""

from __future__ import annotations

import base64
import json
import shutil
import tempfile
from datetime import UTC, datetime
from typing import Any

from treq.testing import RequestTraversalAgent
from twisted.internet import reactor
from twisted.internet.defer import CancelledError, Deferred, gatherResults
from twisted.internet.error import ConnectionLost
from twisted.internet.ssl import DefaultOpenSSLContextFactory
from twisted.internet.task import Clock
from twisted.protocols.policies import ProtocolWrapper, WrappingFactory
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase
from twisted.web.client import ResponseNeverReceived
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgent, IBodyProducer
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site
from zope.interface import implementer

from junebug import __version__
from junebug.http.client import (
    MAX_POST_BODY_READ,
    HttpClient,
    HttpError,
    HttpResult,
    _decode_prefix,
    basic_auth_header,
    describe_error,
    encode_json,
    redact_text,
    redact_url,
    request_target,
    split_credentials,
)
from junebug.http.plain import PlainRequest


class Recorder(Resource):
    """Answers every request with ``code``/``body``; records what it got."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[dict[str, Any]] = []
        self.code = 200
        self.body = b"{}"
        self.content_type = b"application/json"
        self.hang = False

    def render(self, request: Request) -> bytes | int:
        assert request.content is not None
        self.requests.append(
            {
                "method": request.method,
                "path": request.uri,
                "headers": request.requestHeaders,
                "body": request.content.read(),
            }
        )
        if self.hang:
            return NOT_DONE_YET
        request.setResponseCode(self.code)
        request.setHeader(b"Content-Type", self.content_type)
        return self.body


class TrackingProtocol(ProtocolWrapper):
    def connectionLost(self, reason: Failure) -> None:
        super().connectionLost(reason)
        self.lost.callback(None)


class TrackingFactory(WrappingFactory):
    """Remembers every server-side connection and when it is closed."""

    protocol = TrackingProtocol

    def __init__(self, wrapped: Site) -> None:
        super().__init__(wrapped)
        self.connections: list[TrackingProtocol] = []

    def buildProtocol(self, addr: Any) -> TrackingProtocol:
        proto = super().buildProtocol(addr)
        proto.lost = Deferred()
        self.connections.append(proto)
        return proto


from junebug.testing.certificates import make_certificates  # noqa: E402

USER_AGENT = [f"Junebug/{__version__}".encode()]


class RealSocketTests(TestCase):
    """The client against a real Twisted web server on 127.0.0.1."""

    def setUp(self) -> None:
        self.resource = Recorder()
        self.factory = TrackingFactory(Site(self.resource))
        self.port = reactor.listenTCP(0, self.factory, interface="127.0.0.1")
        self.addCleanup(self.port.stopListening)
        self.addCleanup(self._server_connections_closed)
        self.client = HttpClient(reactor)
        self.addCleanup(self.client.close)
        self.base = f"127.0.0.1:{self.port.getHost().port}"

    def _server_connections_closed(self) -> Deferred[Any]:
        for conn in self.factory.connections:
            if conn.transport is not None:
                conn.transport.loseConnection()
        return gatherResults([conn.lost for conn in self.factory.connections])

    def url(self, path: str = "/mo", userinfo: str = "") -> str:
        return f"http://{userinfo}{self.base}{path}"

    def only_request(self) -> dict[str, Any]:
        self.assertEqual(len(self.resource.requests), 1)
        return self.resource.requests[0]

    async def test_posts_json(self) -> None:
        result = await self.client.post_json(self.url(), {"content": "héllo", "n": 1})
        self.assertEqual(result, HttpResult(ok=True, code=200, body="{}", error=None))
        request = self.only_request()
        self.assertEqual(request["method"], b"POST")
        self.assertEqual(request["path"], b"/mo")
        self.assertEqual(json.loads(request["body"]), {"content": "héllo", "n": 1})
        headers = request["headers"]
        self.assertEqual(headers.getRawHeaders(b"Content-Type"), [b"application/json"])
        self.assertIsNone(headers.getRawHeaders(b"Authorization"))

    async def test_basic_auth_from_userinfo(self) -> None:
        result = await self.client.post_json(
            self.url("/mo?x=1", userinfo="us%40er:p%3Ass%20w@"), {}
        )
        self.assertTrue(result.ok)
        request = self.only_request()
        self.assertEqual(request["path"], b"/mo?x=1")
        self.assertEqual(
            request["headers"].getRawHeaders(b"Authorization"),
            [b"Basic " + base64.b64encode(b"us@er:p:ss w")],
        )
        self.assertEqual(
            request["headers"].getRawHeaders(b"Host"), [self.base.encode()]
        )

    async def test_token(self) -> None:
        await self.client.post_json(self.url(), {}, token="sekrit")
        self.assertEqual(
            self.only_request()["headers"].getRawHeaders(b"Authorization"),
            [b"Token sekrit"],
        )

    async def test_basic_wins_over_token(self) -> None:
        await self.client.post_json(self.url(userinfo="u:p@"), {}, token="sekrit")
        self.assertEqual(
            self.only_request()["headers"].getRawHeaders(b"Authorization"),
            [basic_auth_header("u", "p")],
        )

    async def test_non_2xx(self) -> None:
        self.resource.code = 503
        self.resource.body = b"busy"
        result = await self.client.post_json(self.url(), {})
        self.assertEqual(result, HttpResult(ok=False, code=503, body="busy"))

    async def test_redirect_not_followed(self) -> None:
        self.resource.code = 307
        result = await self.client.post_json(self.url(), {})
        self.assertEqual((result.ok, result.code), (False, 307))
        self.assertEqual(len(self.resource.requests), 1)

    async def test_body_truncated(self) -> None:
        self.resource.body = "é".encode() * 3000
        result = await self.client.post_json(self.url(), {})
        self.assertEqual(result.code, 200)
        self.assertEqual(result.body, "é" * 512)

    async def test_huge_body_read_is_bounded(self) -> None:
        self.resource.body = b"x" * (MAX_POST_BODY_READ * 4)
        result = await self.client.post_json(self.url(), {})
        self.assertEqual((result.ok, result.code), (True, 200))
        self.assertEqual(result.body, "x" * 1024)

    async def test_connection_reused(self) -> None:
        for _ in range(3):
            result = await self.client.post_json(self.url(), {})
            self.assertTrue(result.ok)
        self.assertEqual(len(self.resource.requests), 3)
        self.assertEqual(len(self.factory.connections), 1)

    async def test_plain_requests_share_the_posts_connection(self) -> None:
        """A dialect's GET (with Basic auth from userinfo) and form POST go
        through the same kept-alive connection as a JSON POST."""
        await self.client.post_json(self.url(), {})
        got = await self.client.send_request(
            self.url("/dlr?id=1&s=8", "kannel:s3cret@"), PlainRequest("GET")
        )
        self.assertEqual((got.ok, got.code), (True, 200))
        posted = await self.client.send_request(
            self.url("/jasmin"),
            PlainRequest(
                "POST",
                "application/x-www-form-urlencoded",
                "id=1&message_status=DELIVRD",
                headers=(("X-Kannel-To", "+2782 ü"),),
            ),
        )
        self.assertEqual((posted.ok, posted.code), (True, 200))
        _, get, post = self.resource.requests
        self.assertEqual(
            (get["method"], get["path"], get["body"]), (b"GET", b"/dlr?id=1&s=8", b"")
        )
        self.assertEqual(
            get["headers"].getRawHeaders(b"Authorization"),
            [basic_auth_header("kannel", "s3cret")],
        )
        self.assertIsNone(get["headers"].getRawHeaders(b"Content-Length"))
        self.assertEqual(post["body"], b"id=1&message_status=DELIVRD")
        self.assertEqual(
            post["headers"].getRawHeaders(b"Content-Type"),
            [b"application/x-www-form-urlencoded"],
        )
        self.assertEqual(
            post["headers"].getRawHeaders(b"X-Kannel-To"), ["+2782 ü".encode()]
        )
        self.assertEqual(len(self.factory.connections), 1)

    async def test_a_plain_header_cannot_inject_another(self) -> None:
        result = await self.client.send_request(
            self.url(), PlainRequest("GET", headers=(("X-A", "x\r\nInjected: 1"),))
        )
        for request in self.resource.requests:
            self.assertIsNone(request["headers"].getRawHeaders(b"Injected"))
        self.assertTrue(result.ok or not self.resource.requests)

    async def test_user_agent(self) -> None:
        await self.client.post_json(self.url(), {})
        await self.client.get_json(self.url("/api"))
        for request in self.resource.requests:
            self.assertEqual(
                request["headers"].getRawHeaders(b"User-Agent"), USER_AGENT
            )

    async def test_connection_refused(self) -> None:
        closed = reactor.listenTCP(0, self.factory, interface="127.0.0.1")
        port = closed.getHost().port
        await closed.stopListening()
        result = await self.client.post_json(
            f"http://user:hunter2@127.0.0.1:{port}/mo", {}
        )
        self.assertFalse(result.ok)
        self.assertIsNone(result.code)
        assert result.error is not None
        self.assertTrue(
            result.error.startswith("ConnectionRefusedError: "), result.error
        )
        self.assertNotIn("hunter2", result.error)

    async def test_timeout(self) -> None:
        self.resource.hang = True
        result = await self.client.post_json(self.url(), {}, timeout=0.2)
        self.assertEqual(
            result, HttpResult(ok=False, code=None, body="", error="timeout after 0.2s")
        )
        self.assertEqual(len(self.resource.requests), 1)

    async def test_caller_cancel_propagates(self) -> None:
        self.resource.hang = True
        d = Deferred.fromCoroutine(self.client.post_json(self.url(), {}))
        # Let the request reach the server before cancelling.
        while not self.resource.requests:
            await _tick()
        d.cancel()
        with self.assertRaises(CancelledError):
            await d

    async def test_get_json(self) -> None:
        self.resource.body = b'{"status": "ok"}'
        code, body = await self.client.get_json(self.url("/api"), auth=("g", "pw"))
        self.assertEqual((code, body), (200, {"status": "ok"}))
        request = self.only_request()
        self.assertEqual(request["method"], b"GET")
        self.assertEqual(
            request["headers"].getRawHeaders(b"Authorization"),
            [basic_auth_header("g", "pw")],
        )

    async def test_get_json_not_json(self) -> None:
        self.resource.code = 401
        self.resource.body = b"<html>no</html>"
        code, body = await self.client.get_json(self.url("/api"))
        self.assertEqual((code, body), (401, None))

    async def test_get_json_timeout(self) -> None:
        self.resource.hang = True
        with self.assertRaises(HttpError) as caught:
            await self.client.get_json(self.url("/api", userinfo="a:b@"), timeout=0.2)
        self.assertEqual(str(caught.exception), "timeout after 0.2s")

    async def test_get_json_refused(self) -> None:
        closed = reactor.listenTCP(0, self.factory, interface="127.0.0.1")
        port = closed.getHost().port
        await closed.stopListening()
        with self.assertRaises(HttpError) as caught:
            await self.client.get_json(f"http://a:pw@127.0.0.1:{port}/")
        self.assertIn("ConnectionRefusedError", str(caught.exception))


def _tick() -> Deferred[None]:
    d: Deferred[None] = Deferred()
    reactor.callLater(0, d.callback, None)
    return d


@implementer(IAgent)
class HangingAgent:
    """An agent whose requests never get an answer."""

    def __init__(self) -> None:
        self.cancelled = 0
        self.requests: list[tuple[bytes, bytes, Headers | None]] = []

    def request(
        self,
        method: bytes,
        uri: bytes,
        headers: Headers | None = None,
        bodyProducer: IBodyProducer | None = None,  # noqa: N803
    ) -> Deferred[Any]:
        self.requests.append((method, uri, headers))

        def cancel(_: Deferred[Any]) -> None:
            self.cancelled += 1

        return Deferred(cancel)


class ClientUnitTests(TestCase):
    """Client logic with a fake clock and in-memory agents."""

    def test_timeout_uses_injected_clock(self) -> None:
        clock = Clock()
        agent = HangingAgent()
        client = HttpClient(clock, agent=agent)
        d = Deferred.fromCoroutine(client.post_json("http://h/x", {"a": 1}))
        self.assertNoResult(d)
        clock.advance(9.9)
        self.assertNoResult(d)
        clock.advance(0.1)
        result = self.successResultOf(d)
        self.assertEqual(
            result, HttpResult(ok=False, code=None, error="timeout after 10s")
        )
        self.assertEqual(agent.cancelled, 1)
        self.assertEqual(clock.getDelayedCalls(), [])
        method, uri, _ = agent.requests[0]
        self.assertEqual((method, uri), (b"POST", b"http://h/x"))

    def test_traversal_agent(self) -> None:
        resource = Recorder()
        resource.code = 201
        resource.body = b"created"
        client = HttpClient(Clock(), agent=RequestTraversalAgent(resource))
        d = Deferred.fromCoroutine(
            client.post_json("http://a:b@example.com/p", [1, "x"], token="t")
        )
        self.assertEqual(
            self.successResultOf(d), HttpResult(ok=True, code=201, body="created")
        )
        [request] = resource.requests
        self.assertEqual(json.loads(request["body"]), [1, "x"])
        self.assertEqual(
            request["headers"].getRawHeaders(b"Authorization"),
            [basic_auth_header("a", "b")],
        )

    def test_unserialisable_body_raises(self) -> None:
        client = HttpClient(Clock(), agent=HangingAgent())
        d = Deferred.fromCoroutine(client.post_json("http://h/", {"x": object()}))
        self.failureResultOf(d, TypeError)

    def test_bad_url_is_a_result(self) -> None:
        client = HttpClient(Clock(), agent=HangingAgent())
        d = Deferred.fromCoroutine(client.post_json("http://[::1/", {}))
        result = self.successResultOf(d)
        self.assertFalse(result.ok)
        self.assertIsNone(result.code)
        self.assertIsNotNone(result.error)


class HelperTests(TestCase):
    def test_request_target(self) -> None:
        """ASCII URLs go to the agent unchanged; others as URIs."""
        self.assertEqual(
            request_target("http://h:8/p%20q?a=1&b"), b"http://h:8/p%20q?a=1&b"
        )
        self.assertEqual(
            request_target("http://bücher.example/ü?q=é"),
            b"http://xn--bcher-kva.example/%C3%BC?q=%C3%A9",
        )

    def test_redact_url(self) -> None:
        self.assertEqual(
            redact_url("http://user:pass@host:80/p?q=1"),
            "http://user:***@host:80/p?q=1",
        )
        self.assertEqual(redact_url("http://host/p"), "http://host/p")
        self.assertEqual(redact_url("http://user@host/p"), "http://user@host/p")
        self.assertEqual(redact_url("https://u:p@ss@host/"), "https://u:***@host/")

    def test_redact_text(self) -> None:
        self.assertEqual(
            redact_text("Post to http://u:s3cr%2Ft@h/x failed; see https://a:b@c"),
            "Post to http://u:***@h/x failed; see https://a:***@c",
        )
        plain = "no url: user:pass@host"
        self.assertEqual(redact_text(plain), plain)
        self.assertEqual(redact_text("'http://u:p@h'"), "'http://u:***@h'")

    def test_split_credentials(self) -> None:
        self.assertEqual(
            split_credentials("http://a%3Ab:c%40d@h:1/p?q#f"),
            ("http://h:1/p?q#f", ("a:b", "c@d")),
        )
        self.assertEqual(split_credentials("http://tok@h/"), ("http://h/", ("tok", "")))
        self.assertEqual(split_credentials("http://h/"), ("http://h/", None))

    def test_describe_error(self) -> None:
        self.assertEqual(describe_error(ValueError("bad")), "ValueError: bad")
        self.assertEqual(describe_error(Failure(KeyError())), "KeyError")
        wrapped = ResponseNeverReceived([Failure(ConnectionLost("gone"))])
        self.assertEqual(
            describe_error(wrapped),
            "ResponseNeverReceived: ConnectionLost: Connection to the other side "
            "was lost in a non-clean fashion: gone.",
        )
        self.assertEqual(
            describe_error(OSError("cannot reach http://u:pw@h/")),
            "OSError: cannot reach http://u:***@h/",
        )

    def test_encode_json(self) -> None:
        when = datetime(2024, 1, 2, 3, 4, 5, 6, tzinfo=UTC)
        self.assertEqual(
            json.loads(encode_json({"t": when, "s": "é"})),
            {"t": "2024-01-02 03:04:05.000006", "s": "é"},
        )

    def test_decode_prefix(self) -> None:
        self.assertEqual(_decode_prefix("aé".encode(), 2), "a")
        self.assertEqual(_decode_prefix("aé".encode(), 3), "aé")
        self.assertEqual(_decode_prefix(b"a\xff", 10), "a\ufffd")


class TlsTests(TestCase):
    """HTTPS through the keep-alive pool against a Twisted TLS server whose
    certificate a throw-away CA signed."""

    def setUp(self) -> None:
        directory = tempfile.mkdtemp(prefix="jb-tls-test-")
        self.addCleanup(shutil.rmtree, directory, True)
        self.certificates = make_certificates(directory)
        self.resource = Recorder()
        self.factory = TrackingFactory(Site(self.resource))
        options = DefaultOpenSSLContextFactory(
            self.certificates.key_file, self.certificates.cert_file
        )
        self.port = reactor.listenSSL(0, self.factory, options, interface="127.0.0.1")
        self.addCleanup(self.port.stopListening)
        self.addCleanup(self._server_connections_closed)

    def _server_connections_closed(self) -> Deferred[Any]:
        for conn in self.factory.connections:
            if conn.transport is not None:
                conn.transport.loseConnection()
        return gatherResults([conn.lost for conn in self.factory.connections])

    def client(self, ca_file: str | None) -> HttpClient:
        client = HttpClient(reactor, ca_file=ca_file)
        self.addCleanup(client.close)
        return client

    def url(self, host: str = "localhost", path: str = "/mo") -> str:
        return f"https://{host}:{self.port.getHost().port}{path}"

    async def test_verified_with_the_ca_and_kept_alive(self) -> None:
        client = self.client(self.certificates.ca_file)
        for host in ("localhost", "localhost", "127.0.0.1"):
            result = await client.post_json(self.url(host), {"n": 1})
            self.assertEqual((result.ok, result.error), (True, None))
        # one connection per host name, reused, and held by our pool (not
        # the agent's)
        self.assertEqual(len(self.factory.connections), 2)
        posts = client._posts
        assert posts is not None
        port = self.port.getHost().port
        self.assertEqual(
            {key for key, idle in posts._idle.items() if idle},
            {("localhost", port, True), ("127.0.0.1", port, True)},
        )
        for request in self.resource.requests:
            self.assertEqual(
                request["headers"].getRawHeaders(b"User-Agent"), USER_AGENT
            )
            self.assertEqual(request["body"], b'{"n": 1}')

    async def test_refused_without_the_ca(self) -> None:
        """The platform's CAs do not know the test CA."""
        result = await self.client(None).post_json(self.url(), {})
        self.assertEqual((result.ok, result.code), (False, None))
        assert result.error is not None
        self.assertIn("certificate verify failed", result.error)
        self.assertEqual(self.resource.requests, [])

    async def test_host_name_must_match(self) -> None:
        """127.0.0.2 is not a name the certificate gives."""
        client = self.client(self.certificates.ca_file)
        port = self.port.getHost().port
        result = await client.post_json(f"https://127.0.0.2:{port}/mo", {})
        self.assertFalse(result.ok)
        self.assertEqual(self.resource.requests, [])

    async def test_agent_requests_use_the_ca_too(self) -> None:
        """GET (the agent) checks against the same CA and says who it is."""
        self.resource.body = b'{"ok": true}'
        client = self.client(self.certificates.ca_file)
        self.assertEqual(await client.get_json(self.url()), (200, {"ok": True}))
        [request] = self.resource.requests
        self.assertEqual(request["headers"].getRawHeaders(b"User-Agent"), USER_AGENT)
        with self.assertRaises(HttpError):
            await self.client(None).get_json(self.url())

    def test_unreadable_ca_file(self) -> None:
        with self.assertRaises(ValueError) as caught:
            HttpClient(reactor, ca_file="/nonexistent/ca.pem")
        self.assertIn("/nonexistent/ca.pem", str(caught.exception))
