"""The plain-HTTP POST pool against a scripted server on a real socket.

The server reads each request whole (headers and ``Content-Length`` body) and
answers with the next scripted bytes, so every way a server may frame an
answer can be checked: lengths, chunks, close-delimited bodies, interim
``100`` answers, ``Connection: close``, and connections closed while idle.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.protocol import Factory, Protocol
from twisted.trial.unittest import TestCase
from typing_extensions import override

from junebug import __version__
from junebug.http.connections import (
    ConnectionPool,
    PostTarget,
    ResponseError,
    post_target,
)
from junebug.testing.polling import wait_until

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"


class ScriptedServer(Protocol):
    """Answers each whole request with the factory's next script entry; an
    entry ending in ``CLOSE`` closes the connection after writing."""

    def __init__(self, factory: ScriptedFactory) -> None:
        self.factory = factory
        self.buffer = b""
        self.open = False

    @override
    def connectionMade(self) -> None:
        self.open = True
        self.factory.connections.append(self)

    @override
    def connectionLost(self, reason: Any = None) -> None:
        self.open = False

    @override
    def dataReceived(self, data: bytes) -> None:
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            head, _, rest = self.buffer.partition(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if len(rest) < length:
                return
            self.factory.requests.append(head + b"\r\n\r\n" + rest[:length])
            self.buffer = rest[length:]
            answer = self.factory.script.pop(0)
            close = answer.endswith(b"CLOSE")
            assert self.transport is not None
            self.transport.write(answer.removesuffix(b"CLOSE"))
            if close:
                self.transport.loseConnection()


class ScriptedFactory(Factory):
    def __init__(self, script: list[bytes]) -> None:
        self.script = script
        self.requests: list[bytes] = []
        self.connections: list[ScriptedServer] = []

    @override
    def buildProtocol(self, addr: Any) -> ScriptedServer:
        return ScriptedServer(self)


class ConnectionPoolTests(TestCase):
    def serve(
        self, *script: bytes, idle_timeout: float = 120.0
    ) -> tuple[ScriptedFactory, PostTarget]:
        factory = ScriptedFactory(list(script))
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        self.pool = ConnectionPool(reactor, max_per_host=2, idle_timeout=idle_timeout)
        self.addCleanup(self.pool.close)
        target = post_target(f"http://127.0.0.1:{port.getHost().port}/ev?x=1")
        assert target is not None
        return factory, target

    async def post(self, target: PostTarget, limit: int = 100) -> Any:
        return await self.pool.post(
            target, b"Content-Type: application/json\r\n", b'{"a": 1}', limit
        )

    async def test_request_bytes(self) -> None:
        factory, target = self.serve(OK)
        self.assertEqual(await self.post(target), (200, b"{}", False))
        [request] = factory.requests
        port = target.port
        self.assertEqual(
            request,
            b"POST /ev?x=1 HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
            b"User-Agent: Junebug/%s\r\n"
            b"Content-Type: application/json\r\nContent-Length: 8\r\n\r\n"
            b'{"a": 1}' % (port, __version__.encode()),
        )

    async def test_a_get_without_a_body_then_a_post_on_one_connection(self) -> None:
        """A dialect's GET (a Kannel dlr-url) has no body and no
        Content-Length; the connection is kept for the next request."""
        factory, target = self.serve(OK, OK)
        answer = await self.pool.request(target, b"GET", b"X-A: b\r\n", None, 100)
        self.assertEqual(answer, (200, b"{}", False))
        self.assertEqual((await self.post(target))[0], 200)
        get, post = factory.requests
        self.assertEqual(
            get,
            b"GET /ev?x=1 HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
            b"User-Agent: Junebug/%s\r\nX-A: b\r\n\r\n"
            % (target.port, __version__.encode()),
        )
        self.assertTrue(post.startswith(b"POST /ev?x=1 HTTP/1.1\r\n"))
        self.assertEqual(len(factory.connections), 1)

    async def test_keep_alive_reuses_the_connection(self) -> None:
        factory, target = self.serve(OK, OK, OK)
        for _ in range(3):
            self.assertEqual((await self.post(target))[0], 200)
        self.assertEqual(len(factory.connections), 1)

    async def test_chunked_with_trailers(self) -> None:
        factory, target = self.serve(
            b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nX-Trailer: t\r\n\r\n",
            OK,
        )
        self.assertEqual(await self.post(target), (201, b"abcde", False))
        self.assertEqual((await self.post(target))[0], 200)
        self.assertEqual(len(factory.connections), 1)

    async def test_interim_answers_skipped_and_no_content(self) -> None:
        factory, target = self.serve(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n", OK
        )
        self.assertEqual(await self.post(target), (204, b"", False))
        self.assertEqual(await self.post(target), (200, b"{}", False))
        self.assertEqual(len(factory.connections), 1)

    async def test_body_delimited_by_close(self) -> None:
        factory, target = self.serve(b"HTTP/1.1 500 Oops\r\n\r\nbroken CLOSE", OK)
        self.assertEqual(await self.post(target), (500, b"broken ", False))
        self.assertEqual(await self.post(target), (200, b"{}", False))
        self.assertEqual(len(factory.connections), 2)

    async def test_connection_close_and_http_1_0_not_reused(self) -> None:
        factory, target = self.serve(
            b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
            b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n",
            OK,
        )
        for _ in range(3):
            self.assertEqual((await self.post(target))[0], 200)
        self.assertEqual(len(factory.connections), 3)

    async def test_body_cut_at_the_limit(self) -> None:
        factory, target = self.serve(
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789", OK
        )
        self.assertEqual(await self.post(target, limit=4), (200, b"0123", True))
        self.assertEqual((await self.post(target))[0], 200)
        self.assertEqual(len(factory.connections), 2)

    async def test_idle_connection_closed_by_the_server_is_replaced(self) -> None:
        """The server closes a kept-alive connection: the next POST is sent
        once more on a new connection, and succeeds."""
        factory, target = self.serve(OK, OK)
        await self.post(target)
        [first] = factory.connections
        assert first.transport is not None
        first.transport.loseConnection()
        self.assertEqual(await self.post(target), (200, b"{}", False))
        self.assertEqual(len(factory.connections), 2)

    async def test_reused_connection_dropped_while_posting(self) -> None:
        """Closed without an answer after the request was read: retried once
        on a new connection (the server never answered it)."""
        factory, target = self.serve(OK, b"CLOSE", OK)
        await self.post(target)
        self.assertEqual(await self.post(target), (200, b"{}", False))
        self.assertEqual(len(factory.requests), 3)

    async def test_new_connection_dropped_is_an_error(self) -> None:
        _, target = self.serve(b"CLOSE")
        with self.assertRaises(ResponseError):
            await self.post(target)

    async def test_answer_cut_off_is_an_error(self) -> None:
        _, target = self.serve(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n{}CLOSE")
        with self.assertRaises(ResponseError):
            await self.post(target)

    async def test_garbage_is_an_error(self) -> None:
        _, target = self.serve(b"SMTP ready\r\n\r\n")
        with self.assertRaises(ResponseError):
            await self.post(target)

    async def test_at_most_max_per_host_idle(self) -> None:
        factory, target = self.serve(*[OK] * 3)
        posts: list[Deferred[Any]] = [
            Deferred.fromCoroutine(self.post(target)) for _ in range(3)
        ]
        for posting in posts:
            await posting
        self.assertEqual(len(factory.connections), 3)
        await wait_until(
            lambda: sum(1 for c in factory.connections if c.open) == 2,
            timeout=5,
            clock=reactor,
        )

    async def test_idle_connections_are_closed_in_time(self) -> None:
        factory, target = self.serve(OK, OK, idle_timeout=0.2)
        await self.post(target)
        await wait_until(
            lambda: not factory.connections[0].open, timeout=5, clock=reactor
        )
        self.assertEqual(await self.post(target), (200, b"{}", False))
        self.assertEqual(len(factory.connections), 2)

    async def test_cancel_aborts_the_connection(self) -> None:
        factory, target = self.serve()  # never answers
        factory.script = [b""]
        posting = Deferred.fromCoroutine(self.post(target))
        await wait_until(lambda: factory.requests, timeout=5, clock=reactor)
        posting.cancel()
        self.failureResultOf(posting)
        await wait_until(
            lambda: not factory.connections[0].open, timeout=5, clock=reactor
        )


class PostTargetTests(TestCase):
    def test_plain_urls(self) -> None:
        target = post_target("http://example.org/a/b?c=d#frag")
        self.assertEqual(
            target,
            PostTarget(
                "example.org",
                80,
                False,
                b"POST /a/b?c=d HTTP/1.1\r\nHost: example.org\r\n"
                b"User-Agent: Junebug/%s\r\n" % __version__.encode(),
            ),
        )
        target = post_target("http://h:8080")
        assert target is not None
        self.assertEqual((target.port, target.head[:15]), (8080, b"POST / HTTP/1.1"))

    def test_https_urls(self) -> None:
        target = post_target("https://example.org/a")
        assert target is not None
        self.assertEqual(target.key, ("example.org", 443, True))
        self.assertTrue(target.head.startswith(b"POST /a HTTP/1.1\r\n"))
        target = post_target("https://[::1]:8443/")
        assert target is not None
        self.assertEqual(target.key, ("::1", 8443, True))

    def test_others_go_to_the_agent(self) -> None:
        for url in (
            "ftp://h/",
            "https://u:p@h/",
            "http://u:p@h/",
            "http://bücher.example/",
            "http://h:notaport/",
            "http://h/a b",
            "http:///nohost",
        ):
            self.assertIsNone(post_target(url), url)
