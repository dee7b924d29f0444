"""Bytes to PDUs and back, for one SMPP connection.

:class:`SmppProtocol` is the Twisted protocol of an SMPP client connection.
It cuts the byte stream into PDUs with
:class:`~junebug.transports.smpp.pdu.PDUFramer`, decodes each one and hands
it to its :class:`PDUReceiver` (an
:class:`~junebug.transports.smpp.session.SmppSession`): decoded PDUs to
``pdu_received``, undecodable ones to ``pdu_malformed``.  A malformed PDU is
consumed whole, so the next one is read normally; an impossible
``command_length`` leaves the stream unreadable, so after reporting it the
connection is aborted.  The protocol keeps no SMPP state of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol as TypingProtocol

from twisted.internet.interfaces import IAddress
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.python.failure import Failure
from typing_extensions import override

from junebug.transports.smpp.pdu import (
    PDU,
    FramingError,
    PDUDecodeError,
    PDUFramer,
    decode_pdu,
)
from junebug.transports.smpp.session import PDUWriter, SmppSession

__all__ = ["PDUReceiver", "SmppClientFactory", "SmppProtocol"]


class PDUReceiver(TypingProtocol):
    """What an :class:`SmppProtocol` feeds."""

    def connection_made(self, writer: PDUWriter) -> None: ...

    def pdu_received(self, pdu: PDU) -> None: ...

    def pdu_malformed(self, error: PDUDecodeError) -> None: ...

    def connection_lost(self, reason: Failure) -> None: ...


class SmppProtocol(Protocol):
    """Frames PDUs for one connection; see the module docs."""

    def __init__(self, receiver: PDUReceiver) -> None:
        self.receiver = receiver
        self._framer = PDUFramer()
        self._open = False

    @override
    def connectionMade(self) -> None:
        self._open = True
        # PDUs are small and each one waits for an answer: never hold one
        # back to coalesce it with the next (Nagle's algorithm).
        set_no_delay = getattr(self.transport, "setTcpNoDelay", None)
        if set_no_delay is not None:
            set_no_delay(True)
        self.receiver.connection_made(self)

    @override
    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._open = False
        self.receiver.connection_lost(reason)

    @override
    def dataReceived(self, data: bytes) -> None:
        framer = self._framer
        framer.feed(data)  # buffers; PDUs are taken out below
        receiver = self.receiver
        while self._open:
            try:
                frame = framer.next_frame()
            except FramingError as error:
                receiver.pdu_malformed(error)
                self.abort_connection()
                return
            if frame is None:
                return
            try:
                pdu = decode_pdu(frame)
            except PDUDecodeError as error:
                receiver.pdu_malformed(error)
                continue
            receiver.pdu_received(pdu)

    # -- PDUWriter --------------------------------------------------------------

    def send_pdu(self, data: bytes) -> None:
        """Write one encoded PDU."""
        if self._open and self.transport is not None:
            self.transport.write(data)

    def lose_connection(self) -> None:
        if self._open and self.transport is not None:
            self.transport.loseConnection()

    def abort_connection(self) -> None:
        if self.transport is None or not self._open:
            return
        abort = getattr(self.transport, "abortConnection", None)
        if abort is not None:
            abort()
        else:
            self.transport.loseConnection()


class SmppClientFactory(Factory):
    """Builds an :class:`SmppProtocol` around a new session per connection."""

    noisy = False

    def __init__(self, new_session: Callable[[], SmppSession]) -> None:
        self._new_session = new_session

    @override
    def buildProtocol(self, addr: IAddress | None) -> Protocol | None:
        protocol = SmppProtocol(self._new_session())
        protocol.factory = self
        return protocol
