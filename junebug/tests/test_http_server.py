"""The HTTP server every port shares (junebug.http.server): body limits,
authentication before the body, framing, header deadline, connection cap.

Raw sockets (junebug.testing.raw_http) where an HTTP client would hide the
defect: an unread body, a second request smuggled after the first, a slow
header.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet import reactor
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.resource import Resource
from twisted.web.server import Request

from junebug.http import json_body
from junebug.http.server import LimitedChannel, LimitedSite, Refusal, ServerLimits
from junebug.testing import raw_http
from junebug.testing.api import ApiDriver
from junebug.testing.polling import wait_until
from junebug.tests.message_api.driver import MessageApiDriver
from junebug.tests.test_http_transport import WEBHOOKS, Harness


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


def nested_text(depth: int) -> str:
    """``nested(depth)`` as JSON (json.dumps itself gives up at ~1000)."""
    return "[" * depth + "1" + "]" * depth


def api_port(api: ApiDriver) -> int:
    assert api.junebug is not None and api.junebug.port is not None
    port: int = api.junebug.port.getHost().port  # type: ignore[attr-defined]
    return port


class ApiCase(TestCase):
    async def start(self, **overrides: Any) -> ApiDriver:
        driver = ApiDriver(reactor)
        self.addCleanup(driver.stop)
        await driver.start(**overrides)
        return driver

    async def raw(self, api: ApiDriver, data: bytes) -> bytes:
        return await raw_http.exchange(reactor, api_port(api), data)


# -- 1. bodies ------------------------------------------------------------------


class BodyLimitTests(ApiCase):
    async def test_content_length_over_the_limit_is_refused_unread(self) -> None:
        """A Content-Length over max_body_size is a 413 envelope before any
        of the body is sent; the connection is closed."""
        api = await self.start(max_body_size=1000)
        raw = await self.raw(
            api,
            b"POST /channels/ HTTP/1.1\r\nHost: x\r\nContent-Length: 300000000\r\n\r\n",
        )
        code, headers, body = raw_http.only_json(raw)
        self.assertEqual((code, body["description"]), (413, "request body too large"))
        self.assertEqual(body["result"]["errors"][0]["type"], "BodyTooLarge")
        self.assertEqual(headers["connection"], "close")

    async def test_chunked_body_stops_at_the_limit(self) -> None:
        """A chunked body is refused as soon as it passes the limit, without
        waiting for its end."""
        api = await self.start(max_body_size=1000)
        client = await raw_http.connect(reactor, api_port(api))
        self.addCleanup(client.close)
        client.send(
            b"POST /channels/ HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        for _ in range(3):
            client.send(b"200\r\n" + b"x" * 0x200 + b"\r\n")  # never a last chunk
        raw = await client.until_closed(reactor)
        code, _, body = raw_http.only_json(raw)
        self.assertEqual((code, body["description"]), (413, "request body too large"))

    async def test_bodies_stay_in_memory(self) -> None:
        """No body is spooled to a temporary file."""
        api = await self.start()
        assert api.junebug is not None and api.junebug.port is not None
        site = api.junebug.port.factory  # type: ignore[attr-defined]
        self.assertIsInstance(site, LimitedSite)
        for length in (None, 0, 500_000):
            self.assertEqual(type(site.getContentFile(length)).__name__, "BytesIO")

    async def test_credentials_are_checked_before_the_body(self) -> None:
        """With credentials configured, a request without them is a 401
        before its body is read (the body is never sent here)."""
        api = await self.start(api_token="s3cret", api_username="u", api_password="p")
        raw = await self.raw(
            api,
            b"POST /channels/ HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n",
        )
        code, headers, body = raw_http.only_json(raw)
        self.assertEqual((code, body["description"]), (401, "unauthorized"))
        self.assertEqual(headers["www-authenticate"], 'Basic realm="junebug"')
        # /health stays open; a right token still gets in.
        code, _, _ = await api.request("GET", "/health")
        self.assertEqual(code, 200)
        raw = await self.raw(
            api,
            b"GET /channels/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            b"Authorization: Token s3cret\r\n\r\n",
        )
        self.assertEqual(raw_http.only_json(raw)[0], 200)


class MessageApiLimitTests(TestCase):
    async def test_message_api_refuses_before_reading(self) -> None:
        """jb message-api: no credentials or an oversized body are refused
        before the body is read, in the envelope."""
        driver = MessageApiDriver(reactor)
        self.addCleanup(driver.stop)
        api = await driver.start(
            auth={"username": "u", "password": "p"}, max_body_size=100
        )
        port = api.address.port
        raw = await raw_http.exchange(
            reactor,
            port,
            b"POST /messages HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\n",
        )
        code, headers, body = raw_http.only_json(raw)
        self.assertEqual((code, body["description"]), (401, "unauthorized"))
        self.assertIn("Basic realm=", headers["www-authenticate"])
        raw = await raw_http.exchange(
            reactor,
            port,
            b"POST /messages HTTP/1.1\r\nHost: x\r\nContent-Length: 101\r\n"
            b"Authorization: Basic dTpw\r\n\r\n",
        )
        code, _, body = raw_http.only_json(raw)
        self.assertEqual((code, body["description"]), (413, "request body too large"))
        raw = await raw_http.exchange(
            reactor,
            port,
            b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        self.assertNotEqual(raw_http.only_json(raw)[0], 401)  # open, as before


class ChannelBodyLimitTests(TestCase):
    async def test_webhook_body_over_the_limit_and_unauthorised(self) -> None:
        """An http channel's webhook port refuses an oversized body and a
        missing token before reading, in its own JSON error format."""
        h = Harness(self)
        transport = await h.start(**WEBHOOKS, webhook_token="t0k", max_body_size=100)
        assert transport.port is not None
        raw = await raw_http.exchange(
            reactor,
            transport.port,
            b"POST /agg/inbound?token=t0k HTTP/1.1\r\nHost: x\r\n"
            b"Content-Length: 300000000\r\n\r\n",
        )
        self.assertEqual(
            raw_http.only_json(raw)[::2],
            (413, {"error": "Request body is larger than 100 bytes"}),
        )
        raw = await raw_http.exchange(
            reactor,
            transport.port,
            b"POST /agg/inbound HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\n",
        )
        self.assertEqual(raw_http.only_json(raw)[::2], (401, {"error": "Unauthorized"}))
        self.assertEqual(h.rec.inbound, [])


# -- 2. JSON nesting (and 5. non-JSON numbers) ------------------------------------


class StrictJsonTests(SynchronousTestCase):
    def test_depth(self) -> None:
        """64 levels are JSON; 65 are refused; brackets in strings do not count."""
        self.assertEqual(json_body.loads(json.dumps(nested(64))), nested(64))
        with self.assertRaisesRegex(json_body.JsonRefused, "deeper than 64"):
            json_body.loads(json.dumps(nested(65)))
        with self.assertRaisesRegex(json_body.JsonRefused, "deeper than 64"):
            json_body.loads("[" * 100_000)
        text = json.dumps({"a": "[" * 200 + '\\"{' * 100, "b": [[1]]})
        self.assertEqual(json_body.loads(text)["b"], [[1]])

    def test_non_json_numbers(self) -> None:
        """NaN, Infinity, -Infinity and numbers beyond float are refused."""
        for text in ("NaN", "[Infinity]", '{"a": -Infinity}', "1e999", "[-1E400]"):
            with self.assertRaises(json_body.JsonRefused, msg=text):
                json_body.loads(text)
        self.assertEqual(json_body.loads("[1.5e300, -0.0, 10]"), [1.5e300, -0.0, 10])


class NestingTests(ApiCase):
    async def test_deep_bodies_are_400_and_store_nothing(self) -> None:
        """1000 levels on a POST route, or 500 inside metadata, are a 400
        JsonDecodeError; nothing is stored."""
        api = await self.start()
        for body in (
            nested_text(1000),
            f'{{"type": "fake", "config": {{}}, "metadata": {{"m": {nested_text(500)}}}}}',
        ):
            code, answer, _ = await api.request("POST", "/channels/", raw=body.encode())
            self.assertEqual(code, 400)
            self.assertEqual(answer["description"], "json decode error")
            self.assertIn(
                "nested deeper than 64", answer["result"]["errors"][0]["message"]
            )
        code, answer, _ = await api.request("GET", "/channels/")
        self.assertEqual((code, answer["result"]), (200, []))
        code, answer, _ = await api.request(
            "POST", "/channels/", raw=b'{"type": "fake", "config": {"n": NaN}}'
        )
        self.assertEqual((code, answer["description"]), (400, "json decode error"))
        code, answer, _ = await api.request(
            "POST", "/channels/", raw=b'{"type": "fake", "config": {"n": 1e999}}'
        )
        self.assertEqual((code, answer["description"]), (400, "json decode error"))

    async def test_deep_webhook_body_is_a_json_400(self) -> None:
        h = Harness(self)
        await h.start(**WEBHOOKS)
        code, body = await h.post("/agg/inbound", nested_text(1000).encode())
        self.assertEqual((code, body), (400, {"error": "The body is not valid JSON"}))


# -- 5. protocol edges --------------------------------------------------------------


class ProtocolEdgeTests(ApiCase):
    async def test_two_transfer_encodings_are_400_and_closed(self) -> None:
        """chunked then identity: 400 envelope, and what follows is never
        run as a second request."""
        api = await self.start()
        raw = await self.raw(
            api,
            b"POST /channels/ HTTP/1.1\r\nHost: x\r\n"
            b"Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n"
            b"0\r\n\r\nGET /health HTTP/1.1\r\nHost: x\r\n\r\n",
        )
        [(code, headers, body)] = raw_http.responses(raw)
        self.assertEqual(code, 400)
        self.assertEqual(json.loads(body)["description"], "bad request")
        self.assertEqual(headers["content-type"], "application/json")

    async def test_malformed_requests_answer_the_envelope(self) -> None:
        """twisted.web's own 400s (bad request line, bad Content-Length) come
        in the envelope too."""
        api = await self.start()
        for request in (
            b"NONSENSE\r\n\r\n",
            b"POST /channels/ HTTP/1.1\r\nContent-Length: x\r\n\r\n",
        ):
            code, _, body = raw_http.only_json(await self.raw(api, request))
            self.assertEqual((code, body["description"]), (400, "bad request"))

    async def test_non_utf8_path_and_options_star(self) -> None:
        api = await self.start()
        code, _, body = raw_http.only_json(
            await self.raw(
                api,
                b"GET /channels/%ff HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            )
        )
        self.assertEqual((code, body["description"]), (400, "bad request"))
        code, headers, body = raw_http.only_json(
            await self.raw(
                api, b"OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            )
        )
        self.assertEqual((code, body["description"]), (200, "server options"))
        self.assertIn("POST", headers["allow"].split(", "))
        self.assertEqual(body["result"]["methods"], headers["allow"].split(", "))

    async def test_405_carries_allow(self) -> None:
        api = await self.start()
        code, _, headers = await api.request("PUT", "/channels/")
        self.assertEqual(code, 405)
        self.assertEqual(headers.getRawHeaders("allow"), ["GET, HEAD, POST"])

    async def test_slashless_collection_with_a_wrong_method_is_405(self) -> None:
        """GET .../messages (a collection for POST and DELETE) is 405 as
        in the original, not 404; DELETE /channels likewise."""
        api = await self.start()
        code, body, headers = await api.request("GET", "/channels/abc/messages")
        self.assertEqual((code, body["code"]), (405, "Method Not Allowed"))
        self.assertEqual(
            body["description"], "The method is not allowed for the requested URL."
        )
        self.assertEqual(headers.getRawHeaders("allow"), ["DELETE, POST"])
        code, _, _ = await api.request("DELETE", "/channels")
        self.assertEqual(code, 405)
        code, _, _ = await api.request("GET", "/channels/abc/nothing")
        self.assertEqual(code, 404)

    async def test_redirect_does_not_reflect_host(self) -> None:
        api = await self.start()
        code, headers, body = raw_http.only_json(
            await self.raw(
                api,
                b"GET /channels HTTP/1.1\r\nHost: evil.example\r\n"
                b"Connection: close\r\n\r\n",
            )
        )
        self.assertEqual(code, 308)
        self.assertEqual(headers["location"], "/channels/")
        self.assertEqual(body["result"]["errors"][0]["new_url"], "/channels/")


# -- 6. slow clients ----------------------------------------------------------------


class Hello(Resource):
    isLeaf = True

    def render(self, request: Request) -> bytes:
        return b"hello"


def channel_on(clock: Clock, **limits: Any) -> tuple[LimitedChannel, StringTransport]:
    site = LimitedSite(
        Hello(),
        reactor=clock,
        limits=ServerLimits(**limits),
        error_body=lambda r: (b"text/plain", r.message.encode()),
    )
    channel = site.buildProtocol(None)
    assert isinstance(channel, LimitedChannel)
    transport = StringTransport()
    channel.makeConnection(transport)
    return channel, transport


class HeaderDeadlineTests(SynchronousTestCase):
    def test_slow_header_is_408(self) -> None:
        """A header still incomplete after header_timeout is answered 408."""
        clock = Clock()
        channel, transport = channel_on(clock, header_timeout=10)
        channel.dataReceived(b"GET / HTTP/1.1\r\nHost: x\r\n")
        clock.advance(9)
        self.assertFalse(transport.disconnecting)
        channel.dataReceived(b"X-Slow: 1\r\n")  # bytes do not extend it
        clock.advance(1)
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 408 Request Timeout"))
        self.assertTrue(transport.disconnecting)

    def test_idle_connection_is_closed_silently(self) -> None:
        clock = Clock()
        _, transport = channel_on(clock, header_timeout=10)
        clock.advance(10)
        self.assertEqual(transport.value(), b"")
        self.assertTrue(transport.disconnecting)

    def test_complete_header_stops_the_deadline(self) -> None:
        """The deadline covers the header only; the next one starts with the
        previous answer."""
        clock = Clock()
        channel, transport = channel_on(clock, header_timeout=10)
        clock.advance(5)
        channel.dataReceived(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertIn(b"HTTP/1.1 200", transport.value())
        transport.clear()
        clock.advance(9)  # past the first deadline (10), not the second (15)
        self.assertFalse(transport.disconnecting)
        clock.advance(1)  # idle since the answer
        self.assertTrue(transport.disconnecting)
        self.assertEqual(transport.value(), b"")


class ConnectionLimitTests(ApiCase):
    async def test_header_deadline_on_the_api_port(self) -> None:
        api = await self.start(header_timeout=0.2)
        client = await raw_http.connect(reactor, api_port(api))
        self.addCleanup(client.close)
        client.send(b"GET /channels/ HTTP/1.1\r\nHost: x\r\n")
        code, _, body = raw_http.only_json(await client.until_closed(reactor))
        self.assertEqual((code, body["description"]), (408, "request timeout"))

    async def test_connections_over_the_limit_get_503(self) -> None:
        api = await self.start(max_connections=2)
        assert api.junebug is not None and api.junebug.port is not None
        site = api.junebug.port.factory  # type: ignore[attr-defined]
        held = [await raw_http.connect(reactor, api_port(api)) for _ in range(2)]
        for client in held:
            self.addCleanup(client.close)
        await wait_until(lambda: site.open_connections == 2)
        raw = await raw_http.exchange(
            reactor, api_port(api), b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        code, _, body = raw_http.only_json(raw)
        self.assertEqual((code, body["description"]), (503, "too many connections"))
        held[0].close()
        await wait_until(lambda: site.open_connections == 1)
        raw = await raw_http.exchange(
            reactor,
            api_port(api),
            b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        self.assertEqual(raw_http.only_json(raw)[0], 200)


class RefusalFormatTests(SynchronousTestCase):
    def test_refusal_headers_are_written(self) -> None:
        clock = Clock()
        channel, transport = channel_on(clock)
        channel.refuse(
            Refusal(401, "Unauthorized", "unauthorized", "no", ((b"A", b"b"),))
        )
        channel.refuse(Refusal(400, "BadRequest", "bad request", "twice"))
        self.assertEqual(
            transport.value(),
            b"HTTP/1.1 401 Unauthorized\r\nContent-Type: text/plain\r\n"
            b"Content-Length: 2\r\nConnection: close\r\nA: b\r\n\r\nno",
        )
