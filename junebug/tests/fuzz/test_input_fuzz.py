"""Hypothesis fuzzing of what peers send us: telnet bytes, dmark requests, PDUs.

Each fuzzer feeds arbitrary input and checks that nothing raises, that the
transport keeps working afterwards (a later well-formed input is still
handled) and that every published message is a well-formed vumi message.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet.address import IPv4Address
from twisted.internet.defer import ensureDeferred
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.trial.unittest import SynchronousTestCase

from junebug.converter import structure
from junebug.messages import from_json, to_json
from junebug.testing.context import RecordingContext
from junebug.transports.smpp.pdu import (
    EnquireLink,
    PDUDecodeError,
    PDUFramer,
    encode_pdu,
)
from junebug.transports.telnet.transport import TelnetConfig, TelnetTransport

FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

#: Bytes a telnet peer may send: IAC sequences, line endings, UTF-8 and junk.
TELNET_BYTES = st.lists(
    st.one_of(
        st.binary(max_size=64),
        st.sampled_from(
            [
                b"\xff",
                b"\xff\xfb\x01",
                b"\xff\xfa\x18\x01\xff\xf0",
                b"\r",
                b"\n",
                b"\r\n",
                b"\r\x00",
                b"\x00",
                "h\u00e9llo \U0001f600".encode(),
                b"/quit",
                b"/QUIT \n",
            ]
        ),
    ),
    max_size=20,
)


def assert_vumi_message(case: SynchronousTestCase, msg: dict[str, Any]) -> None:
    """A published message survives the wire and has the fields vumi needs."""
    case.assertEqual(from_json(to_json(msg)), msg)
    for field in ("message_id", "message_type", "timestamp", "transport_name"):
        case.assertIn(field, msg)


def started_and_connected(
    case: SynchronousTestCase, reactor: MemoryReactorClock, transport: Any
) -> tuple[Any, StringTransport]:
    """Start ``transport`` on ``reactor`` and connect one client to the port
    it listens on: ``(server protocol, its wire)``."""
    case.successResultOf(ensureDeferred(transport.start()))
    factory = reactor.tcpServers[0][1]
    protocol = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 1))
    wire = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 4000))
    protocol.makeConnection(wire)
    return protocol, wire


class TelnetFuzzTests(SynchronousTestCase):
    @FUZZ
    @given(chunks=TELNET_BYTES)
    def test_arbitrary_bytes(self, chunks: list[bytes]) -> None:
        """No input breaks the transport; MOs stay well formed."""
        reactor = MemoryReactorClock()
        recorder = RecordingContext(reactor)
        config = structure({"twisted_endpoint": "tcp:0"}, TelnetConfig)
        transport = TelnetTransport(recorder.context, config)
        connection, wire = started_and_connected(self, reactor, transport)
        for chunk in chunks:
            if wire.disconnecting:
                break
            connection.dataReceived(chunk)
        for msg in recorder.inbound:
            assert_vumi_message(self, msg)
            self.assertIn(msg["session_event"], ("new", "resume", "close"))
        # A fresh client still works after whatever the first one sent.
        other = reactor.tcpServers[0][1].buildProtocol(
            IPv4Address("TCP", "127.0.0.1", 1)
        )
        other.makeConnection(
            StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 4001))
        )
        other.dataReceived(b"still alive\r\n")
        contents = [m["content"] for m in recorder.inbound]
        self.assertIn("still alive", contents)
        connection.connectionLost(None)
        other.connectionLost(None)
        self.successResultOf(ensureDeferred(transport.stop()))


class PduFuzzTests(SynchronousTestCase):
    @FUZZ
    @given(junk=st.binary(max_size=300), split=st.integers(min_value=1, max_value=64))
    def test_framer_never_raises_anything_else(self, junk: bytes, split: int) -> None:
        """Any byte stream gives PDUs or a PDUDecodeError (answered with
        generic_nack or a disconnect), never another exception."""
        framer = PDUFramer()
        stream = junk + encode_pdu(EnquireLink(sequence_number=7))
        try:
            for start in range(0, len(stream), split):
                for pdu in framer.feed(stream[start : start + split]):
                    encode_pdu(pdu)
        except PDUDecodeError as error:
            nack = error.generic_nack()
            self.assertEqual(nack.command_status, error.command_status)


DMARK_KEYS = [
    "transactionId",
    "msisdn",
    "ussdServiceCode",
    "ussdRequestString",
    "transactionTime",
    "creationTime",
    "response",
]


class DmarkFuzzTests(SynchronousTestCase):
    @FUZZ
    @given(
        params=st.dictionaries(
            st.one_of(st.sampled_from(DMARK_KEYS), st.text(max_size=8)),
            st.text(max_size=30),
            max_size=9,
        ),
        path=st.sampled_from(["/ussd", "/ussd/", "/nope", "/ussd/health", "/"]),
        method=st.sampled_from([b"GET", b"POST", b"PUT"]),
    )
    def test_arbitrary_requests(
        self, params: dict[str, str], path: str, method: bytes
    ) -> None:
        """Any request gets a deliberate answer (never a crash or a 500)."""
        from urllib.parse import urlencode

        from junebug.transports.dmark.config import DmarkConfig
        from junebug.transports.dmark.transport import DmarkTransport

        reactor = MemoryReactorClock()
        recorder = RecordingContext(reactor)
        config = structure(
            {"web_path": "/ussd", "web_port": 0, "request_timeout": 5}, DmarkConfig
        )
        transport = DmarkTransport(recorder.context, config)
        protocol, wire = started_and_connected(self, reactor, transport)
        query = urlencode(params)
        protocol.dataReceived(
            method + f" {path}?{query} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
        )
        reactor.advance(10)
        status_line = wire.value().split(b"\r\n", 1)[0]
        self.assertTrue(status_line.startswith(b"HTTP/1.1 "), wire.value()[:200])
        code = int(status_line.split()[1])
        self.assertIn(code, (200, 400, 401, 404, 405, 504), wire.value()[:300])
        for msg in recorder.inbound:
            assert_vumi_message(self, msg)
        protocol.connectionLost(None)
        self.successResultOf(ensureDeferred(transport.stop()))
        self.assertEqual(self.flushLoggedErrors(), [])
