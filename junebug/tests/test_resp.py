"""The RESP client's encoder, parser and reply matching (no server needed;
the contract suite runs it against the real Redis)."""

from __future__ import annotations

from typing import Any

from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import TestCase

from junebug.stores.resp import (
    RedisConnectionError,
    RedisReplyError,
    _RespProtocol,
    encode_command,
    parse_reply,
)


class CodecTests(TestCase):
    def test_encode(self) -> None:
        self.assertEqual(
            encode_command(("SET", "k€y", 12, b"\xff")),
            b"*4\r\n$3\r\nSET\r\n$5\r\nk\xe2\x82\xacy\r\n$2\r\n12\r\n$1\r\n\xff\r\n",
        )

    def test_parse_each_kind(self) -> None:
        cases: list[tuple[bytes, Any]] = [
            (b"+OK\r\n", "OK"),
            (b":-42\r\n", -42),
            (b"$-1\r\n", None),
            (b"*-1\r\n", None),
            (b"$0\r\n\r\n", ""),
            (b"$4\r\na\r\nb\r\n", "a\r\nb"),
            (b"$2\r\n\xff\xfe\r\n", b"\xff\xfe"),
            (b"*3\r\n$1\r\na\r\n*1\r\n:1\r\n$-1\r\n", ["a", [1], None]),
        ]
        for data, expected in cases:
            self.assertEqual(parse_reply(data + b"+next\r\n", 0), (expected, len(data)))

    def test_error_is_a_value(self) -> None:
        reply, pos = parse_reply(b"-WRONGTYPE Operation\r\n", 0)
        self.assertIsInstance(reply, RedisReplyError)
        self.assertEqual(str(reply), "WRONGTYPE Operation")
        self.assertEqual(pos, 22)

    def test_incomplete_at_every_cut(self) -> None:
        data = b"*2\r\n$5\r\nhello\r\n:7\r\n"
        for cut in range(len(data)):
            with self.assertRaises(Exception) as caught:
                parse_reply(data[:cut], 0) if cut else parse_reply(b"", 0)
            self.assertEqual(type(caught.exception).__name__, "_Incomplete")

    def test_garbage(self) -> None:
        with self.assertRaises(ValueError):
            parse_reply(b"?what\r\n", 0)


class ProtocolTests(TestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.protocol = _RespProtocol(self.clock, timeout=5)
        self.transport = StringTransport()
        self.protocol.makeConnection(self.transport)

    def test_pipelined_replies_in_any_chunks(self) -> None:
        results: list[object] = []
        for n in range(3):
            self.protocol.execute(("GET", f"k{n}")).addCallback(results.append)
        self.assertEqual(self.transport.value().count(b"GET"), 3)
        stream = b"$2\r\nv0\r\n$-1\r\n-ERR no\r\n"
        for byte in range(len(stream)):
            self.protocol.dataReceived(stream[byte : byte + 1])
        self.assertEqual(results[:2], ["v0", None])
        self.assertIsInstance(results[2], RedisReplyError)

    def test_no_reply_in_time_drops_the_connection(self) -> None:
        failures: list[Any] = []
        self.protocol.execute(("GET", "a")).addErrback(failures.append)
        self.clock.advance(3)
        self.protocol.execute(("GET", "b")).addErrback(failures.append)
        self.protocol.dataReceived(b"$1\r\na\r\n")  # the first is answered
        self.clock.advance(4.9)  # the second has waited 4.9s
        self.assertEqual(failures, [])
        self.clock.advance(0.1)
        [failure] = failures
        self.assertIsInstance(failure.value, RedisConnectionError)
        self.assertIn("no reply from Redis within 5s", str(failure.value))
        self.assertFalse(self.protocol.open)

    def test_reply_nobody_asked_for_drops_the_connection(self) -> None:
        self.protocol.dataReceived(b"+OK\r\n")
        self.assertFalse(self.protocol.open)
        with self.assertRaises(RedisConnectionError):
            self.protocol.execute(("PING",))
