"""Hypothesis against the two parsers on every message's path: Redis replies
(RESP2) and HTTP answers to our POSTs.  However the bytes are cut into
``dataReceived`` calls, the result is the same as when they arrive whole, and
garbage never raises out of the protocol (it fails the request instead)."""

from __future__ import annotations

import contextlib
import os
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from junebug.http.connections import ResponseError, _Answer
from junebug.stores.resp import RedisReplyError, _RespProtocol

EXAMPLES = int(os.environ.get("JUNEBUG_WIRE_FUZZ_EXAMPLES", "200"))

texts = st.text(max_size=20)
resp_values = st.recursive(
    st.one_of(
        st.none(),
        st.integers(min_value=-(2**63), max_value=2**63 - 1),
        texts,
        st.binary(max_size=20),
        texts.map(lambda t: RedisReplyError("ERR " + " ".join(t.splitlines()))),
    ),
    lambda inner: st.lists(inner, max_size=4),
    max_leaves=10,
)


def encode_reply(value: Any) -> bytes:
    if value is None:
        return b"$-1\r\n"
    if isinstance(value, RedisReplyError):
        return b"-" + str(value).encode() + b"\r\n"
    if isinstance(value, int):
        return b":%d\r\n" % value
    if isinstance(value, str):
        value = value.encode("utf-8")
    if isinstance(value, bytes):
        return b"$%d\r\n%s\r\n" % (len(value), value)
    return b"*%d\r\n" % len(value) + b"".join(encode_reply(v) for v in value)


def normal(value: Any) -> Any:
    """What the parser gives back for ``value`` (bytes come back as text,
    with U+FFFD for what is not UTF-8; errors compare by text)."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, RedisReplyError):
        return ("error", str(value))
    if isinstance(value, list):
        return [normal(v) for v in value]
    return value


def cuts(data: bytes) -> st.SearchStrategy[list[bytes]]:
    return st.lists(st.integers(0, len(data)), max_size=6).map(
        lambda points: [
            data[a:b]
            for a, b in zip(
                [0, *sorted(points)], [*sorted(points), len(data)], strict=True
            )
            if b > a
        ]
    )


class RespFuzzTests(SynchronousTestCase):
    @settings(max_examples=EXAMPLES, deadline=None)
    @given(st.lists(resp_values, min_size=1, max_size=5), st.data())
    def test_replies_in_any_chunks(
        self, values: list[Any], data: st.DataObject
    ) -> None:
        stream = b"".join(encode_reply(v) for v in values)
        protocol = _RespProtocol(Clock(), timeout=5)
        protocol.makeConnection(StringTransport())
        results: list[Any] = []
        for _ in values:
            protocol.execute(("GET", "k")).addCallback(results.append)
        for chunk in data.draw(cuts(stream)):
            protocol.dataReceived(chunk)
        self.assertEqual([normal(r) for r in results], [normal(v) for v in values])
        self.assertTrue(protocol.open)

    @settings(max_examples=EXAMPLES, deadline=None)
    @given(st.binary(max_size=60))
    def test_garbage_never_escapes(self, garbage: bytes) -> None:
        protocol = _RespProtocol(Clock(), timeout=5)
        protocol.makeConnection(StringTransport())
        failures: list[Any] = []
        protocol.execute(("GET", "k")).addErrback(failures.append)
        protocol.dataReceived(garbage)  # must not raise
        if failures:  # unreadable: the command failed and the connection went
            self.assertFalse(protocol.open)


def http_answer(code: int, body: bytes, framing: str) -> bytes:
    head = b"HTTP/1.1 %d X\r\n" % code
    if framing == "length":
        return head + b"Content-Length: %d\r\n\r\n" % len(body) + body
    chunks = b"".join(
        b"%x\r\n%s\r\n" % (len(body[i : i + 7]), body[i : i + 7])
        for i in range(0, len(body), 7)
    )
    return head + b"Transfer-Encoding: chunked\r\n\r\n" + chunks + b"0\r\n\r\n"


class HttpAnswerFuzzTests(SynchronousTestCase):
    @settings(max_examples=EXAMPLES, deadline=None)
    @given(
        # 204 and 304 answers have no body whatever their headers say
        st.integers(200, 599).filter(lambda code: code not in (204, 304)),
        st.binary(max_size=50),
        st.sampled_from(["length", "chunked"]),
        st.data(),
    )
    def test_answers_in_any_chunks(
        self, code: int, body: bytes, framing: str, data: st.DataObject
    ) -> None:
        stream = http_answer(code, body, framing)
        answer = _Answer(limit=1000)
        buffer = bytearray()
        complete = False
        for chunk in data.draw(cuts(stream)):
            self.assertFalse(complete)
            buffer += chunk
            complete = answer.feed(buffer)
        self.assertTrue(complete)
        self.assertEqual((answer.code, answer.body, bytes(buffer)), (code, body, b""))

    @settings(max_examples=EXAMPLES, deadline=None)
    @given(st.binary(max_size=80))
    def test_garbage_is_a_response_error_or_waits(self, garbage: bytes) -> None:
        answer = _Answer(limit=1000)
        with contextlib.suppress(ResponseError):
            answer.feed(bytearray(b"HTTP/1.1 200 OK\r\n" + garbage))
