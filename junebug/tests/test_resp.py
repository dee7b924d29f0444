"""The RESP client's encoder, parser and reply matching (no server needed;
the contract suite runs it against the real Redis)."""

from __future__ import annotations

import time
from typing import Any

import hiredis
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import TestCase

from junebug.stores.resp import (
    RedisConnectionError,
    RedisReplyError,
    _RespProtocol,
    encode_command,
    reply_reader,
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
            # not UTF-8: decoded as RedisBackend decodes it
            (b"$2\r\n\xff\xfe\r\n", "\ufffd\ufffd"),
            (b"*3\r\n$1\r\na\r\n*1\r\n:1\r\n$-1\r\n", ["a", [1], None]),
        ]
        for data, expected in cases:
            reader = reply_reader()
            reader.feed(data + b"+next\r\n")
            self.assertEqual(reader.gets(), expected)
            self.assertEqual(reader.gets(), "next")

    def test_error_is_a_value(self) -> None:
        reader = reply_reader()
        reader.feed(b"-WRONGTYPE Operation\r\n")
        reply = reader.gets()
        self.assertIsInstance(reply, RedisReplyError)
        self.assertEqual(str(reply), "WRONGTYPE Operation")
        self.assertIs(reader.gets(), False)

    def test_incomplete_at_every_cut(self) -> None:
        data = b"*2\r\n$5\r\nhello\r\n:7\r\n"
        for cut in range(len(data)):
            reader = reply_reader()
            reader.feed(data[:cut])
            self.assertIs(reader.gets(), False)
            reader.feed(data[cut:])
            self.assertEqual(reader.gets(), ["hello", 7])

    def test_garbage(self) -> None:
        reader = reply_reader()
        reader.feed(b"?what\r\n")
        with self.assertRaises(hiredis.ProtocolError):
            reader.gets()


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

    def test_garbage_drops_the_connection(self) -> None:
        failures: list[Any] = []
        self.protocol.execute(("GET", "a")).addErrback(failures.append)
        self.protocol.dataReceived(b"?what\r\n")
        [failure] = failures
        self.assertIn("unreadable reply", str(failure.value))
        self.assertFalse(self.protocol.open)

    def test_big_reply_in_many_reads_is_parsed_once(self) -> None:
        """A 200,000-member array arriving in 16 KiB reads: the old parser
        started the array again on every read (about 14 s of CPU for this
        reply, past the 10 s reply timeout); now about 10 ms."""
        members = [f"member-{n:08d}" for n in range(200_000)]
        stream = b"*%d\r\n" % len(members) + b"".join(
            b"$15\r\n%s\r\n" % m.encode() for m in members
        )
        results: list[object] = []
        self.protocol.execute(("SMEMBERS", "s")).addCallback(results.append)
        started = time.process_time()
        for start in range(0, len(stream), 16384):
            self.protocol.dataReceived(stream[start : start + 16384])
        spent = time.process_time() - started
        self.assertEqual(results, [members])
        self.assertLess(spent, 1.0)

    def test_big_bulk_string_in_many_reads(self) -> None:
        """A 4 MiB GET in 16 KiB reads: 1.5 s with the old parser (it looked
        for the end of the bulk string again at every read), now ~2 ms."""
        value = "x" * (4 * 1024 * 1024)
        stream = b"$%d\r\n%s\r\n" % (len(value), value.encode())
        results: list[object] = []
        self.protocol.execute(("GET", "k")).addCallback(results.append)
        started = time.process_time()
        for start in range(0, len(stream), 16384):
            self.protocol.dataReceived(stream[start : start + 16384])
        spent = time.process_time() - started
        self.assertEqual(results, [value])
        self.assertLess(spent, 0.3)
