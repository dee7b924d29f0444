"""One telnet client connection: telnet framing in, lines out.

The connection strips telnet commands (``IAC`` sequences and option
subnegotiations) from what the client sends, politely refuses every option
the client offers or asks for, splits the rest into lines and hands each
decoded line to its owner (the transport).  Text written to the client uses
the telnet network line ending, ``CR LF``.
"""

from __future__ import annotations

from collections import deque
from itertools import count
from typing import Protocol as TypingProtocol

from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IAddress
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.python.failure import Failure
from typing_extensions import override

from junebug.messages import UserMessage

# Telnet command bytes (RFC 854).
IAC = 255
DONT = 254
DO = 253
WONT = 252
WILL = 251
SB = 250
SE = 240

_CR = 0x0D
_LF = 0x0A
_NUL = 0x00

# Parser states.
_DATA = 0
_COMMAND = 1  # after IAC
_OPTION = 2  # after IAC WILL/WONT/DO/DONT
_SUBNEG = 3  # inside IAC SB ... IAC SE
_SUBNEG_IAC = 4  # IAC seen inside a subnegotiation

QUIT_COMMAND = "/quit"

_serial = count(1)


def address_string(address: IAddress) -> str | None:
    """``host:port`` for an IP address, the path for a UNIX one."""
    if isinstance(address, IPv4Address | IPv6Address):
        return f"{address.host}:{address.port}"
    if isinstance(address, UNIXAddress) and address.name:
        return address.name.decode("utf-8", "replace")
    return None


def normalise_newlines(text: str) -> str:
    """Turn ``CR LF`` and lone ``CR`` into ``LF``."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


class ConnectionOwner(TypingProtocol):
    """What a :class:`TelnetConnection` reports to."""

    def connection_made(self, conn: TelnetConnection) -> None: ...

    def line_received(self, conn: TelnetConnection, line: str) -> None: ...

    def connection_lost(self, conn: TelnetConnection) -> None: ...


class TelnetConnection(Protocol):
    """A telnet client; the transport keeps its addresses and MO queue here."""

    #: Longest line (in bytes) accepted; a longer one drops the connection.
    MAX_LINE_LENGTH = 16384
    LINE_ENDING = b"\r\n"

    def __init__(self, owner: ConnectionOwner) -> None:
        self._owner = owner
        self._state = _DATA
        self._command = 0
        self._line = bytearray()
        self._after_cr = False
        self._closing = False
        #: The address MT messages reach this client by (its ``from_addr``).
        self.from_addr: str | None = None
        #: The ``to_addr`` of this client's MO messages (None: the default).
        self.to_addr: str | None = None
        #: The local ``host:port`` of the connection, noted when it is made.
        self.local_host: str | None = None
        #: True once the client has a ``from_addr`` and its ``new`` went out.
        self.registered = False
        #: MO messages waiting to be published, oldest first.
        self.outbox: deque[UserMessage] = deque()
        self.draining = False
        #: Fires (with None) when the connection is lost.
        self.lost: Deferred[None] = Deferred()
        self.is_lost = False

    # -- Protocol ---------------------------------------------------------

    @override
    def connectionMade(self) -> None:
        self._owner.connection_made(self)

    @override
    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self.is_lost:
            return
        self.is_lost = True
        self._closing = True
        try:
            self._owner.connection_lost(self)
        finally:
            self.lost.callback(None)

    @override
    def dataReceived(self, data: bytes) -> None:
        for byte in data:
            if self._closing:
                return
            state = self._state
            if state == _DATA:
                if byte == IAC:
                    self._state = _COMMAND
                else:
                    self._app_byte(byte)
            elif state == _COMMAND:
                if byte == IAC:  # an escaped 0xFF data byte
                    self._state = _DATA
                    self._app_byte(byte)
                elif byte in (WILL, WONT, DO, DONT):
                    self._command = byte
                    self._state = _OPTION
                elif byte == SB:
                    self._state = _SUBNEG
                else:  # NOP, GA, AYT, IP, ...: nothing to do
                    self._state = _DATA
            elif state == _OPTION:
                self._state = _DATA
                self._refuse(self._command, byte)
            elif state == _SUBNEG:
                if byte == IAC:
                    self._state = _SUBNEG_IAC
            else:  # _SUBNEG_IAC
                self._state = _DATA if byte == SE else _SUBNEG

    # -- input ------------------------------------------------------------

    def _refuse(self, command: int, option: int) -> None:
        # Every option stays off: answer an offer or request with a refusal,
        # and acknowledge nothing else (so there is no negotiation loop).
        if command == WILL:
            self._write_raw(bytes([IAC, DONT, option]))
        elif command == DO:
            self._write_raw(bytes([IAC, WONT, option]))

    def _app_byte(self, byte: int) -> None:
        if self._after_cr:
            self._after_cr = False
            if byte in (_LF, _NUL):  # CR LF or CR NUL: one line end
                return
        if byte == _CR:
            self._after_cr = True
            self._end_line()
        elif byte == _LF:
            self._end_line()
        else:
            self._line.append(byte)
            if len(self._line) > self.MAX_LINE_LENGTH:
                self._line.clear()
                self.close()

    def _end_line(self) -> None:
        raw = bytes(self._line)
        self._line.clear()
        line = raw.decode("utf-8", "replace")
        if line.strip().lower() == QUIT_COMMAND:
            self.close()
            return
        self._owner.line_received(self, line)

    # -- output -----------------------------------------------------------

    def _write_raw(self, data: bytes) -> None:
        if self.transport is not None and not self.is_lost:
            self.transport.write(data)

    def write_text(self, text: str) -> None:
        """Write ``text`` and a line ending (UTF-8, telnet ``CR LF``)."""
        if self._closing:
            return
        body = normalise_newlines(text).encode("utf-8")
        body = body.replace(b"\xff", b"\xff\xff")  # never in UTF-8; be safe
        self._write_raw(body.replace(b"\n", self.LINE_ENDING) + self.LINE_ENDING)

    def close(self) -> None:
        """Disconnect once everything written so far has been sent."""
        self._closing = True
        if self.transport is not None and not self.is_lost:
            self.transport.loseConnection()

    def abort(self) -> None:
        """Disconnect now, dropping anything not yet sent."""
        self._closing = True
        if self.transport is None or self.is_lost:
            return
        abort = getattr(self.transport, "abortConnection", None)
        if abort is not None:
            abort()
        else:
            self.transport.loseConnection()

    # -- addresses --------------------------------------------------------

    def peer_address(self) -> str:
        """``<peer host>:<peer port>``, or a unique name for other sockets."""
        if self.transport is not None:
            peer = self.transport.getPeer()
            if isinstance(peer, IPv4Address | IPv6Address):
                return f"{peer.host}:{peer.port}"
        return f"client-{next(_serial)}"

    def local_address(self) -> str | None:
        """The local ``host:port`` of this connection."""
        if self.transport is None:
            return None
        return address_string(self.transport.getHost())


class TelnetFactory(Factory):
    """Builds a :class:`TelnetConnection` reporting to ``owner`` per client."""

    noisy = False

    def __init__(self, owner: ConnectionOwner) -> None:
        self._owner = owner

    @override
    def buildProtocol(self, addr: IAddress | None) -> Protocol | None:
        conn = TelnetConnection(self._owner)
        conn.factory = self
        return conn
