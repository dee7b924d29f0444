"""Doubles for the SMPP session and transport tests."""

from __future__ import annotations

from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, succeed
from twisted.internet.testing import (
    MemoryReactorClock,
    StringTransportWithDisconnection,
)

from junebug.converter import structure
from junebug.messages import Message, user_message
from junebug.testing.context import PublishRecorder
from junebug.transports.smpp.config import SmppConfig
from junebug.transports.smpp.pdu import PDU, PDUFramer, decode_pdu, encode_pdu
from junebug.transports.smpp.session import SmppSession


def smpp_config(**overrides: Any) -> SmppConfig:
    """A config structured as the channel would, with test-friendly timers."""
    data: dict[str, Any] = {
        "twisted_endpoint": "tcp:host=127.0.0.1:port=2775",
        "system_id": "esme1",
        "password": "secret",
        "initial_reconnect_delay": 1.0,
        "max_reconnect_delay": 8.0,
    }
    data.update(overrides)
    return structure(data, SmppConfig)


def mt(content: str | None = "hello", **fields: Any) -> Message:
    """An outbound vumi message."""
    return user_message(
        to_addr=fields.pop("to_addr", "27820001111"),
        from_addr=fields.pop("from_addr", "1234"),
        transport_name="chan-1",
        content=content,
        **fields,
    )


class PeerEnd:
    """The SMSC end of one in-memory connection: read what the ESME wrote,
    write PDUs back."""

    def __init__(self, protocol: Any, transport: StringTransportWithDisconnection):
        self.protocol = protocol
        self.transport = transport
        self._framer = PDUFramer()

    def received(self) -> list[PDU]:
        """The PDUs the ESME wrote since the last call."""
        data = self.transport.value()
        self.transport.clear()
        self._framer.feed(data)
        pdus = []
        while (frame := self._framer.next_frame()) is not None:
            pdus.append(decode_pdu(frame))
        return pdus

    def send(self, *pdus: PDU) -> None:
        for pdu in pdus:
            self.protocol.dataReceived(encode_pdu(pdu))

    def send_bytes(self, data: bytes) -> None:
        self.protocol.dataReceived(data)

    @property
    def connected(self) -> bool:
        return bool(self.transport.connected) and not self.transport.disconnecting

    def drop(self) -> None:
        """The SMSC closes the connection."""
        self.transport.loseConnection()


def open_connection(protocol: Any) -> PeerEnd:
    """Connect ``protocol`` to a :class:`PeerEnd`."""
    transport = StringTransportWithDisconnection()
    transport.protocol = protocol
    protocol.makeConnection(transport)
    return PeerEnd(protocol, transport)


def accept_connection(reactor: MemoryReactorClock) -> PeerEnd:
    """Complete the latest ``connectTCP`` the ESME made."""
    host, port, factory, _timeout, _bind = reactor.tcpClients[-1]
    protocol = factory.buildProtocol(IPv4Address("TCP", host, port))
    return open_connection(protocol)


class FakeContext(PublishRecorder):
    """Collects what a transport publishes; publishing can be made to fail."""

    log_namespace = "junebug.tests.smpp"

    def event_types(self) -> list[tuple[str, str | None]]:
        """``(event_type, user_message_id)`` of each event."""
        return [(e["event_type"], e["user_message_id"]) for e in self.events]

    def status_types(self) -> list[tuple[str, str]]:
        """``(type, status)`` of each status event."""
        return [(s["type"], s["status"]) for s in self.statuses]


class RecordingOwner:
    """A session owner that records what the session tells it."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.requests: list[PDU] = []
        self.answer: Deferred[int] | int = 0

    def session_binding(self, session: SmppSession) -> None:
        self.calls.append(("binding", None))

    def session_bound(self, session: SmppSession) -> None:
        self.calls.append(("bound", None))

    def session_bind_failed(self, session: SmppSession, kind: str, reason: str) -> None:
        self.calls.append((kind, reason))

    def session_closed(self, session: SmppSession, reason: str) -> None:
        self.calls.append(("closed", reason))

    def request_received(self, session: SmppSession, pdu: PDU) -> Deferred[int]:
        self.requests.append(pdu)
        if isinstance(self.answer, Deferred):
            return self.answer
        return succeed(self.answer)

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]
