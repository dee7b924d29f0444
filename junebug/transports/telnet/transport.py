"""The ``telnet`` and ``telnet_addr`` channel types.

``telnet`` (vumi's ``TelnetServerTransport``) listens on a server endpoint and
treats each TCP client as a user addressed ``<peer host>:<peer port>``:
connecting sends a ``new`` MO with no content, each line a ``resume`` MO, and
disconnecting (or typing ``/quit``) a ``close`` MO.  MT messages are written to
the client whose address is their ``to_addr``.

``telnet_addr`` (vumi's ``AddressedTelnetServerTransport``) first asks the
client for the ``to_addr`` and ``from_addr`` to use, then behaves the same,
addressed by the ``from_addr`` given.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

from twisted.internet.defer import (
    CancelledError,
    Deferred,
    maybeDeferred,
)
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IListeningPort

from junebug.messages import (
    SESSION_CLOSE,
    SESSION_NEW,
    SESSION_RESUME,
    UserMessage,
    ack,
    nack,
    user_message,
)
from junebug.transports.interface import TransportContext
from junebug.transports.telnet.config import TelnetConfig
from junebug.transports.telnet.protocol import (
    TelnetConnection,
    TelnetFactory,
    address_string,
    normalise_newlines,
)
from junebug.transports.toolkit import observe, wait_all

__all__ = ["AddressedTelnetTransport", "TelnetConfig", "TelnetTransport"]

UNKNOWN_ADDRESS_REASON = "Unknown address."


class TelnetTransport:
    """A telnet server; each client is a user addressed by its ``host:port``."""

    CONFIG_CLASS: ClassVar[type[Any]] = TelnetConfig
    TRANSPORT_TYPE: ClassVar[str] = "telnet"
    #: Longest ``stop()`` waits for clients to go and for their MOs to publish.
    STOP_TIMEOUT: ClassVar[float] = 10.0

    def __init__(self, context: TransportContext, config: TelnetConfig) -> None:
        self._context = context
        self._config = config
        self._log = context.log
        #: Registered clients by address (the ``from_addr`` of their MOs).
        self._clients: dict[str, TelnetConnection] = {}
        #: Every open connection, registered or not.
        self._connections: set[TelnetConnection] = set()
        self._listening: IListeningPort | None = None
        self._listen_d: Deferred[IListeningPort] | None = None
        self._stopping = False
        self._stop_d: Deferred[None] | None = None
        #: The listening ``host:port``, kept after stop for late close MOs.
        self._bound_address: str | None = None

    # -- what the channel and tests may look at ------------------------------

    @property
    def config(self) -> TelnetConfig:
        return self._config

    def is_stopping(self) -> bool:
        """True once ``stop()`` has been called."""
        return self._stopping

    @property
    def port(self) -> int | None:
        """The bound TCP port (the real one for ``tcp:0``), or None."""
        if self._listening is None:
            return None
        found: int | None = getattr(self._listening.getHost(), "port", None)
        return found

    @property
    def address(self) -> str | None:
        """The listening ``host:port`` (e.g. ``0.0.0.0:9001``), or None."""
        if self._listening is None:
            return None
        return address_string(self._listening.getHost())

    @property
    def client_addresses(self) -> list[str]:
        """Addresses of the registered clients, in connection order."""
        return list(self._clients)

    # -- lifecycle -----------------------------------------------------------

    async def start(self) -> None:
        if self._listening is not None or self._listen_d is not None:
            return
        if self.is_stopping():
            return
        endpoint = serverFromString(self._context.reactor, self._config.endpoint)
        self._listen_d = endpoint.listen(TelnetFactory(self))
        try:
            port = await self._listen_d
        except CancelledError:
            if self.is_stopping():
                return
            raise
        finally:
            self._listen_d = None
        if self.is_stopping():
            # stop() ran while we were binding; do not leave the port open.
            await self._stop_listening(port)
            return
        self._listening = port
        self._bound_address = address_string(port.getHost())
        self._log.info(
            "Telnet channel {channel_id} listening on {address}",
            channel_id=self._context.channel_id,
            address=self.address,
        )

    async def stop(self) -> None:
        if self._stop_d is None:
            self._stop_d = Deferred.fromCoroutine(self._stop())
        await observe(self._stop_d)

    async def _stop(self) -> None:
        self._stopping = True
        try:
            if self._listen_d is not None:
                self._listen_d.cancel()
            port, self._listening = self._listening, None
            if port is not None:
                await self._stop_listening(port)
            await self._disconnect_all()
            if not await self._context.tasks.wait(self.STOP_TIMEOUT):
                self._log.warn(
                    "Telnet channel {channel_id}: gave up waiting for inbound "
                    "messages to be published",
                    channel_id=self._context.channel_id,
                )
        except Exception:
            self._log.failure(
                "Telnet channel {channel_id} failed to stop cleanly",
                channel_id=self._context.channel_id,
            )

    async def _stop_listening(self, port: IListeningPort) -> None:
        try:
            await maybeDeferred(port.stopListening)
        except Exception:
            self._log.failure("Telnet listener failed to stop")

    async def _disconnect_all(self) -> None:
        conns = [c for c in self._connections if not c.is_lost]
        if not conns:
            return
        for conn in conns:
            conn.close()
        if await self._wait_all(observe(c.lost) for c in conns):
            return
        self._log.warn(
            "Telnet channel {channel_id}: clients did not disconnect; aborting",
            channel_id=self._context.channel_id,
        )
        stuck = [c for c in conns if not c.is_lost]
        for conn in stuck:
            conn.abort()
        await self._wait_all(observe(c.lost) for c in stuck)

    async def _wait_all(self, deferreds: Iterable[Deferred[Any]]) -> bool:
        return await wait_all(self._context.reactor, deferreds, self.STOP_TIMEOUT)

    # -- connections (called by TelnetConnection) ------------------------------

    def connection_made(self, conn: TelnetConnection) -> None:
        if self._stopping:
            conn.close()
            return
        self._connections.add(conn)
        conn.local_host = conn.local_address()
        self.client_connected(conn)

    def line_received(self, conn: TelnetConnection, line: str) -> None:
        if self._stopping or conn.is_lost:
            return
        self.client_line(conn, line)

    def connection_lost(self, conn: TelnetConnection) -> None:
        self._connections.discard(conn)
        address = conn.from_addr
        if address is not None and self._clients.get(address) is conn:
            del self._clients[address]
        if conn.registered:
            self.publish_mo(conn, None, SESSION_CLOSE)

    # -- protocol behaviour (overridden by the addressed variant) -------------

    def client_connected(self, conn: TelnetConnection) -> None:
        conn.from_addr = conn.peer_address()
        self.register(conn)

    def client_line(self, conn: TelnetConnection, line: str) -> None:
        self.publish_mo(conn, line, SESSION_RESUME)

    def register(self, conn: TelnetConnection) -> None:
        """Make ``conn`` reachable by its ``from_addr`` and send its ``new``."""
        assert conn.from_addr is not None
        previous = self._clients.get(conn.from_addr)
        if previous is not None and previous is not conn:
            self._log.info(
                "Telnet address {address} now reaches a newer client",
                address=conn.from_addr,
            )
        self._clients[conn.from_addr] = conn
        conn.registered = True
        self.publish_mo(conn, None, SESSION_NEW)

    # -- inbound -------------------------------------------------------------

    def default_to_addr(self, conn: TelnetConnection) -> str | None:
        """The ``to_addr`` of MOs from a client that did not choose one."""
        return self._config.to_addr or self._bound_address or conn.local_host

    def publish_mo(
        self, conn: TelnetConnection, content: str | None, session_event: str
    ) -> None:
        """Queue an MO from ``conn``; a client's MOs are published in order."""
        msg = user_message(
            to_addr=conn.to_addr or self.default_to_addr(conn),
            from_addr=conn.from_addr,
            transport_name=self._context.channel_id,
            content=content,
            transport_type=self._config.transport_type,
            session_event=session_event,
        )
        conn.outbox.append(msg)
        if conn.draining:
            return
        conn.draining = True
        self._context.tasks.spawn(self._drain(conn), "publish telnet MO messages")

    async def _drain(self, conn: TelnetConnection) -> None:
        try:
            while conn.outbox:
                msg = conn.outbox.popleft()
                try:
                    await self._context.publish_inbound(msg)
                except CancelledError:
                    self._log.warn(
                        "Telnet channel {channel_id}: dropped {count} inbound "
                        "message(s) from {address} while stopping",
                        channel_id=self._context.channel_id,
                        count=len(conn.outbox) + 1,
                        address=conn.from_addr,
                    )
                    conn.outbox.clear()
                except Exception:
                    self._log.failure(
                        "Telnet channel {channel_id}: could not publish an "
                        "inbound message from {address}",
                        channel_id=self._context.channel_id,
                        address=conn.from_addr,
                    )
        finally:
            conn.draining = False

    # -- outbound ------------------------------------------------------------

    async def handle_outbound(self, message: UserMessage) -> None:
        to_addr = message.get("to_addr")
        content = message.get("content")
        text = None if content is None else normalise_newlines(str(content))
        message_id: str = message.get("message_id") or ""
        channel_id = self._context.channel_id
        conn = self._clients.get(to_addr) if isinstance(to_addr, str) else None
        if conn is None or conn.is_lost:
            notice = f"UNKNOWN ADDR [{to_addr}]: {text or ''}"
            for other in list(self._clients.values()):
                other.write_text(notice)
            await self._context.publish_event(
                nack(message_id, UNKNOWN_ADDRESS_REASON, channel_id)
            )
            return
        if text is not None:
            conn.write_text(text)
        if message.get("session_event") == SESSION_CLOSE:
            conn.close()
        await self._context.publish_event(ack(message_id, message_id, channel_id))


class AddressedTelnetTransport(TelnetTransport):
    """A telnet server whose clients say which addresses they use.

    A client is asked for a ``to_addr`` and a ``from_addr``; only then is it
    registered (under that ``from_addr``) and its ``new`` MO sent.  Each client
    keeps its own ``to_addr``.
    """

    TO_ADDR_PROMPT: ClassVar[str] = 'Please provide "to_addr":'
    FROM_ADDR_PROMPT: ClassVar[str] = 'Please provide "from_addr":'

    def client_connected(self, conn: TelnetConnection) -> None:
        conn.write_text(self.TO_ADDR_PROMPT)

    def client_line(self, conn: TelnetConnection, line: str) -> None:
        if conn.registered:
            self.publish_mo(conn, line, SESSION_RESUME)
            return
        value = line.strip()
        if conn.to_addr is None:
            if not value:
                conn.write_text(self.TO_ADDR_PROMPT)
                return
            conn.to_addr = value
            conn.write_text(self.FROM_ADDR_PROMPT)
            return
        if not value:
            conn.write_text(self.FROM_ADDR_PROMPT)
            return
        conn.from_addr = value
        conn.write_text(
            f"[Sending all messages to: {conn.to_addr} and from: {conn.from_addr}]"
        )
        self.register(conn)
