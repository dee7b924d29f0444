"""The ESME side of one SMPP connection: bind, keep alive, correlate, unbind.

One :class:`SmppSession` lives exactly as long as one TCP connection (made by
:class:`~junebug.transports.smpp.protocol.SmppProtocol`, which feeds it PDUs).
Its life is a typed Automat machine; the states say what is true::

    Idle --connection_made--> Binding --bind_succeeded--> Bound
    Binding --bind_rejected / bind_timed_out / unbind / peer_unbind--> Disconnecting
    Bound --unbind--> Unbinding --unbind_response / unbind_timed_out--> Disconnecting
    Bound, Unbinding --peer_unbind / link_failed--> Disconnecting
    any --connection_lost--> Closed

- **Binding**: the bind PDU of the configured type is sent and a bind timer
  started; a rejection or the timer closes the connection.
- **Bound**: ``enquire_link`` goes out every interval; requests may be sent
  with :meth:`SmppSession.send_request`, which returns a Deferred firing with
  the response PDU (whatever its ``command_status``).
- **Unbinding**: ``unbind`` was sent; the connection closes on ``unbind_resp``
  or after the unbind timeout.
- **link_failed**: a request unanswered for ``response_timeout`` seconds (an
  ``enquire_link`` or a ``submit_sm``) means the link is dead: the connection
  is aborted, so the owner reconnects.

Whatever the state, the session answers the peer's ``enquire_link`` and
``unbind``; it answers an unknown command with ``generic_nack``
(``ESME_RINVCMDID``), a malformed request with its response carrying the
decoding error, and a broken stream with ``generic_nack`` before dropping the
connection.  ``deliver_sm`` and ``data_sm`` go to the owner, which decides the
``command_status`` of the response; they are refused with
``ESME_RINVBNDSTS`` before the bind completes and once the session is closing
(while our own ``unbind`` awaits its response they are still taken).  When the
connection ends, every request still waiting for its response fails with
:class:`SessionClosed`.

Request/response correlation is kept out of the machine on purpose: it is
plain bookkeeping (:mod:`~junebug.transports.smpp.correlation`) that the
machine switches on and off, and keeping it out lets a response's callbacks
send the next request synchronously without re-entering the machine.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import attrs
from automat import TypeMachineBuilder
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from junebug.transports.smpp.correlation import RequestTracker
from junebug.transports.smpp.pdu import (
    PDU,
    PDU_CLASSES,
    BindReceiver,
    BindTransceiver,
    BindTransmitter,
    CommandId,
    CommandStatus,
    EnquireLink,
    FramingError,
    GenericNack,
    PDUDecodeError,
    Unbind,
    encode_pdu,
    status_name,
)
from junebug.transports.smpp.sequencing import SequenceGenerator

__all__ = [
    "MalformedResponse",
    "NotBound",
    "PDUWriter",
    "ResponseTimeout",
    "SessionClosed",
    "SessionError",
    "SessionOwner",
    "SessionSettings",
    "SmppSession",
]

_RESPONSE_BIT = 0x80000000


class SessionError(Exception):
    """A request could not be completed on this session."""


class NotBound(SessionError):
    """The session is not bound: requests cannot be sent."""


class SessionClosed(SessionError):
    """The connection ended before the response arrived."""


class ResponseTimeout(SessionError):
    """No response arrived within the response timeout."""


class MalformedResponse(SessionError):
    """The response arrived but could not be decoded."""

    def __init__(self, error: PDUDecodeError) -> None:
        super().__init__(error.message)
        self.error = error


class PDUWriter(Protocol):
    """What a session needs from its connection."""

    def send_pdu(self, data: bytes) -> None:
        """Write an encoded PDU."""

    def lose_connection(self) -> None:
        """Close once everything written is sent."""

    def abort_connection(self) -> None:
        """Close now."""


class SessionOwner(Protocol):
    """Who a session reports to (the transport)."""

    def session_binding(self, session: SmppSession) -> None:
        """The connection is up and the bind was sent."""

    def session_bound(self, session: SmppSession) -> None:
        """The bind succeeded: requests may be sent."""

    def session_bind_failed(self, session: SmppSession, kind: str, reason: str) -> None:
        """The bind failed (``kind`` is ``bind_failed`` or ``bind_timeout``)."""

    def session_closed(self, session: SmppSession, reason: str) -> None:
        """The connection ended."""

    def request_received(self, session: SmppSession, pdu: PDU) -> Deferred[int]:
        """A ``deliver_sm`` or ``data_sm``: fire with the response's status."""


@attrs.frozen
class SessionSettings:
    """The bind parameters and timers of a session."""

    bind_class: type[BindTransceiver | BindTransmitter | BindReceiver]
    system_id: str
    password: str
    system_type: str = ""
    interface_version: int = 0x34
    addr_ton: int = 0
    addr_npi: int = 0
    address_range: str = ""
    bind_timeout: float = 30.0
    enquire_link_interval: float = 55.0
    response_timeout: float = 60.0
    unbind_timeout: float = 2.0

    def bind_pdu(self, sequence_number: int) -> PDU:
        return self.bind_class(
            sequence_number=sequence_number,
            system_id=self.system_id,
            password=self.password,
            system_type=self.system_type,
            interface_version=self.interface_version,
            addr_ton=self.addr_ton,
            addr_npi=self.addr_npi,
            address_range=self.address_range,
        )


# --------------------------------------------------------------------------
# The machine


class _Inputs(Protocol):
    def connection_made(self) -> None:
        "The TCP connection is up."

    def bind_succeeded(self) -> None:
        "A bind response with ESME_ROK arrived."

    def bind_rejected(self, reason: str) -> None:
        "A bind response with an error arrived."

    def bind_timed_out(self) -> None:
        "The bind timer expired."

    def enquire_link_due(self) -> None:
        "Time to send an enquire_link."

    def link_failed(self, reason: str) -> None:
        "The link is dead (no response, broken stream)."

    def unbind(self) -> None:
        "Our side wants to end the session."

    def unbind_response(self) -> None:
        "The unbind_resp arrived."

    def unbind_timed_out(self) -> None:
        "No unbind_resp arrived in time."

    def peer_unbind(self, pdu: PDU) -> None:
        "The peer sent unbind."

    def connection_lost(self, reason: str) -> None:
        "The TCP connection ended."


@attrs.define(eq=False)
class _Core:
    """What every state shares."""

    session: SmppSession
    settings: SessionSettings
    clock: IReactorTime
    owner: SessionOwner
    log: Logger
    bound: bool = False
    #: True while the peer's messages are accepted (bound, and unbinding).
    receiving: bool = False
    bind_timer: IDelayedCall | None = None
    enquire_timer: IDelayedCall | None = None
    unbind_timer: IDelayedCall | None = None

    def cancel_timers(self) -> None:
        for name in ("bind_timer", "enquire_timer", "unbind_timer"):
            timer: IDelayedCall | None = getattr(self, name)
            if timer is not None and timer.active():
                timer.cancel()
            setattr(self, name, None)


def _build_machine() -> Callable[[_Core], _Inputs]:
    builder = TypeMachineBuilder(_Inputs, _Core)
    idle = builder.state("Idle")
    binding = builder.state("Binding")
    bound = builder.state("Bound")
    unbinding = builder.state("Unbinding")
    disconnecting = builder.state("Disconnecting")
    closed = builder.state("Closed")

    everything = (
        _Inputs.connection_made,
        _Inputs.bind_succeeded,
        _Inputs.bind_rejected,
        _Inputs.bind_timed_out,
        _Inputs.enquire_link_due,
        _Inputs.link_failed,
        _Inputs.unbind,
        _Inputs.unbind_response,
        _Inputs.unbind_timed_out,
        _Inputs.peer_unbind,
        _Inputs.connection_lost,
    )

    @idle.upon(_Inputs.connection_made).to(binding)
    def send_bind(inputs: _Inputs, core: _Core) -> None:
        session = core.session
        settings = core.settings
        d = session._request(settings.bind_pdu(session.next_sequence_number()), None)
        d.addCallbacks(session._bind_response, session._ignore_closed)
        core.bind_timer = core.clock.callLater(
            settings.bind_timeout, inputs.bind_timed_out
        )
        core.owner.session_binding(session)

    @binding.upon(_Inputs.bind_succeeded).to(bound)
    def enter_bound(inputs: _Inputs, core: _Core) -> None:
        core.cancel_timers()
        core.bound = core.receiving = True
        core.enquire_timer = core.clock.callLater(
            core.settings.enquire_link_interval, inputs.enquire_link_due
        )
        core.owner.session_bound(core.session)

    @binding.upon(_Inputs.bind_rejected).to(disconnecting)
    def bind_rejected(inputs: _Inputs, core: _Core, reason: str) -> None:
        core.cancel_timers()
        core.owner.session_bind_failed(core.session, "bind_failed", reason)
        core.session._lose()

    @binding.upon(_Inputs.bind_timed_out).to(disconnecting)
    def bind_timed_out(inputs: _Inputs, core: _Core) -> None:
        core.bind_timer = None
        core.owner.session_bind_failed(
            core.session,
            "bind_timeout",
            f"No bind response within {core.settings.bind_timeout:g}s",
        )
        core.session._lose()

    @bound.upon(_Inputs.enquire_link_due).loop()
    def send_enquire_link(inputs: _Inputs, core: _Core) -> None:
        session = core.session
        d = session._request(
            EnquireLink(sequence_number=session.next_sequence_number()),
            core.settings.response_timeout,
        )
        d.addErrback(session._ignore_closed)
        core.enquire_timer = core.clock.callLater(
            core.settings.enquire_link_interval, inputs.enquire_link_due
        )

    @bound.upon(_Inputs.unbind).to(unbinding)
    def send_unbind(inputs: _Inputs, core: _Core) -> None:
        core.cancel_timers()
        core.bound = False
        session = core.session
        unbind = Unbind(sequence_number=session.next_sequence_number())
        d = session._request(unbind, None)
        d.addCallbacks(lambda _: inputs.unbind_response(), session._ignore_closed)
        core.unbind_timer = core.clock.callLater(
            core.settings.unbind_timeout, inputs.unbind_timed_out
        )

    @unbinding.upon(_Inputs.unbind_response).to(disconnecting)
    def unbound(inputs: _Inputs, core: _Core) -> None:
        core.cancel_timers()
        core.receiving = False
        core.session._lose()

    @unbinding.upon(_Inputs.unbind_timed_out).to(disconnecting)
    def unbind_timed_out(inputs: _Inputs, core: _Core) -> None:
        core.unbind_timer = None
        core.receiving = False
        core.session._abort()

    @binding.upon(_Inputs.unbind).to(disconnecting)
    def give_up_binding(inputs: _Inputs, core: _Core) -> None:
        core.cancel_timers()
        core.session._lose()

    @binding.upon(_Inputs.peer_unbind).to(disconnecting)
    @bound.upon(_Inputs.peer_unbind).to(disconnecting)
    @unbinding.upon(_Inputs.peer_unbind).to(disconnecting)
    def answer_unbind(inputs: _Inputs, core: _Core, pdu: PDU) -> None:
        core.cancel_timers()
        core.bound = core.receiving = False
        core.log.info("The SMSC unbound")
        core.session._respond(pdu, CommandStatus.ESME_ROK)
        core.session._lose()

    @binding.upon(_Inputs.link_failed).to(disconnecting)
    @bound.upon(_Inputs.link_failed).to(disconnecting)
    @unbinding.upon(_Inputs.link_failed).to(disconnecting)
    def drop_link(inputs: _Inputs, core: _Core, reason: str) -> None:
        core.cancel_timers()
        core.bound = core.receiving = False
        core.log.warn("Dropping the SMPP connection: {reason}", reason=reason)
        core.session._close_reason = reason
        core.session._abort()

    @idle.upon(_Inputs.connection_lost).to(closed)
    @binding.upon(_Inputs.connection_lost).to(closed)
    @bound.upon(_Inputs.connection_lost).to(closed)
    @unbinding.upon(_Inputs.connection_lost).to(closed)
    @disconnecting.upon(_Inputs.connection_lost).to(closed)
    def closed_down(inputs: _Inputs, core: _Core, reason: str) -> None:
        core.cancel_timers()
        core.bound = core.receiving = False
        core.session._finish(reason)

    # Everything else changes nothing: a late timer, a duplicate request to
    # unbind, a response for a state already left.
    handled = {
        (idle, _Inputs.connection_made),
        (idle, _Inputs.connection_lost),
        (binding, _Inputs.bind_succeeded),
        (binding, _Inputs.bind_rejected),
        (binding, _Inputs.bind_timed_out),
        (binding, _Inputs.unbind),
        (binding, _Inputs.peer_unbind),
        (binding, _Inputs.link_failed),
        (binding, _Inputs.connection_lost),
        (bound, _Inputs.enquire_link_due),
        (bound, _Inputs.unbind),
        (bound, _Inputs.peer_unbind),
        (bound, _Inputs.link_failed),
        (bound, _Inputs.connection_lost),
        (unbinding, _Inputs.unbind_response),
        (unbinding, _Inputs.unbind_timed_out),
        (unbinding, _Inputs.peer_unbind),
        (unbinding, _Inputs.link_failed),
        (unbinding, _Inputs.connection_lost),
        (disconnecting, _Inputs.connection_lost),
    }
    for state in (idle, binding, bound, unbinding, disconnecting, closed):
        for method in everything:
            if (state, method) not in handled:
                state.upon(method).loop().returns(None)

    return builder.build()


_Machine = _build_machine()


# --------------------------------------------------------------------------
# The session


class SmppSession:
    """One SMPP session over one connection; see the module docs."""

    def __init__(
        self,
        settings: SessionSettings,
        clock: IReactorTime,
        owner: SessionOwner,
        sequence: SequenceGenerator | None = None,
        log: Logger | None = None,
    ) -> None:
        self.settings = settings
        self._clock = clock
        self._owner = owner
        self._sequence = sequence if sequence is not None else SequenceGenerator()
        self._log = log if log is not None else Logger()
        self._writer: PDUWriter | None = None
        self._connected = False
        self._tracker = RequestTracker(clock, self._response_timed_out)
        self._core = _Core(self, settings, clock, owner, self._log)
        self._machine: _Inputs = _Machine(self._core)
        self._closed_waiters: list[Deferred[None]] = []
        self._close_reason: str | None = None
        #: Why the connection ended, once it has.
        self.closed_reason: str | None = None

    def __repr__(self) -> str:
        return f"<SmppSession {self.settings.system_id} bound={self.is_bound}>"

    # -- what the owner uses -------------------------------------------------

    @property
    def is_bound(self) -> bool:
        """True while requests may be sent."""
        return self._core.bound

    @property
    def is_closed(self) -> bool:
        return self.closed_reason is not None

    @property
    def outstanding(self) -> int:
        """How many requests await their responses."""
        return len(self._tracker)

    def next_sequence_number(self) -> int:
        return self._sequence.next_sequence_number()

    def send_request(self, pdu: PDU) -> Deferred[PDU]:
        """Send a request; the Deferred fires with its response PDU.

        It fails with :class:`SessionClosed` if the connection ends first,
        :class:`ResponseTimeout` if the response timeout passes, or
        :class:`MalformedResponse`.  Raises :class:`NotBound` unless bound,
        and :class:`~junebug.transports.smpp.pdu.PDUEncodeError` for a PDU
        that cannot be encoded.
        """
        if not self._core.bound:
            raise NotBound("the SMPP session is not bound")
        return self._request(pdu, self.settings.response_timeout)

    def unbind(self) -> None:
        """Unbind politely (or just close, if not bound yet)."""
        self._machine.unbind()

    def wait_closed(self) -> Deferred[None]:
        """Fires once the connection has ended."""
        if self.is_closed:
            d: Deferred[None] = Deferred()
            d.callback(None)
            return d
        waiter: Deferred[None] = Deferred()
        self._closed_waiters.append(waiter)
        return waiter

    # -- what the protocol calls --------------------------------------------

    def connection_made(self, writer: PDUWriter) -> None:
        self._writer = writer
        self._connected = True
        self._machine.connection_made()

    def connection_lost(self, reason: Failure) -> None:
        self._connected = False
        text = self._close_reason or _reason_text(reason)
        self._machine.connection_lost(text)

    def pdu_received(self, pdu: PDU) -> None:
        """Route one decoded PDU."""
        if pdu.is_response:
            if not self._tracker.resolve(pdu):
                self._log.warn(
                    "Unexpected {command} (sequence {sequence}, status {status})",
                    command=pdu.command_name,
                    sequence=pdu.sequence_number,
                    status=status_name(pdu.command_status),
                )
            return
        command_id = pdu.command_id
        if command_id == CommandId.ENQUIRE_LINK:
            self._respond(pdu, CommandStatus.ESME_ROK)
        elif command_id == CommandId.UNBIND:
            self._machine.peer_unbind(pdu)
        elif command_id in (CommandId.DELIVER_SM, CommandId.DATA_SM):
            self._deliver(pdu)
        elif command_id in (CommandId.ALERT_NOTIFICATION, CommandId.OUTBIND):
            self._log.info("Ignoring {command}", command=pdu.command_name)
        else:
            self._refuse(pdu)

    def pdu_malformed(self, error: PDUDecodeError) -> None:
        """Answer a PDU that could not be decoded."""
        self._log.warn("Malformed PDU: {error!r}", error=error)
        command_id = error.command_id
        if isinstance(error, FramingError) or command_id is None:
            self._send(error.generic_nack())
            self._machine.link_failed(f"unreadable PDU stream: {error.message}")
            return
        if command_id & _RESPONSE_BIT:
            if error.sequence_number is not None:
                self._tracker.fail(error.sequence_number, MalformedResponse(error))
            return
        response_class = PDU_CLASSES.get(command_id | _RESPONSE_BIT)
        if command_id in PDU_CLASSES and response_class is not None:
            self._send(
                response_class(
                    sequence_number=error.sequence_number or 0,
                    command_status=error.command_status,
                )
            )
        else:
            self._send(error.generic_nack())

    # -- internals -------------------------------------------------------------

    def _request(self, pdu: PDU, timeout: float | None) -> Deferred[PDU]:
        data = encode_pdu(pdu)
        d = self._tracker.add(pdu.sequence_number, pdu.command_id, timeout)
        self._write(data)
        return d

    def _send(self, pdu: PDU) -> None:
        self._write(encode_pdu(pdu))

    def _write(self, data: bytes) -> None:
        if self._writer is not None and self._connected:
            self._writer.send_pdu(data)

    def _respond(self, pdu: PDU, status: int) -> None:
        self._send(pdu.response(status))

    def _refuse(self, pdu: PDU) -> None:
        self._log.warn("Refusing unsupported {command}", command=pdu.command_name)
        try:
            response = pdu.response(CommandStatus.ESME_RINVCMDID)
        except TypeError:
            response = GenericNack(
                sequence_number=pdu.sequence_number,
                command_status=CommandStatus.ESME_RINVCMDID,
            )
        self._send(response)

    def _deliver(self, pdu: PDU) -> None:
        if not self._core.receiving:
            self._respond(pdu, CommandStatus.ESME_RINVBNDSTS)
            return
        try:
            d = self._owner.request_received(self, pdu)
        except Exception:
            self._log.failure("Handling {command} failed", command=pdu.command_name)
            self._respond(pdu, CommandStatus.ESME_RX_T_APPN)
            return

        def failed(failure: Failure) -> int:
            self._log.failure(
                "Handling {command} failed", failure, command=pdu.command_name
            )
            return CommandStatus.ESME_RX_T_APPN

        d.addErrback(failed)
        d.addCallback(lambda status: self._respond(pdu, status))

    def _bind_response(self, pdu: PDU) -> None:
        if pdu.command_status == CommandStatus.ESME_ROK and pdu.command_id in (
            CommandId.BIND_TRANSCEIVER_RESP,
            CommandId.BIND_TRANSMITTER_RESP,
            CommandId.BIND_RECEIVER_RESP,
        ):
            self._machine.bind_succeeded()
        else:
            self._machine.bind_rejected(
                f"{pdu.command_name} {status_name(pdu.command_status)}"
            )

    def _ignore_closed(self, failure: Failure) -> None:
        failure.trap(SessionError)

    def _response_timed_out(self, sequence_number: int, command_id: int) -> None:
        name = _command_name(command_id)
        reason = f"no response to {name} within {self.settings.response_timeout:g}s"
        self._tracker.fail(sequence_number, ResponseTimeout(reason))
        self._machine.link_failed(reason)

    def _lose(self) -> None:
        if self._writer is not None and self._connected:
            self._writer.lose_connection()

    def _abort(self) -> None:
        if self._writer is not None and self._connected:
            self._writer.abort_connection()

    def _finish(self, reason: str) -> None:
        self.closed_reason = reason
        self._tracker.fail_all(SessionClosed(reason))
        try:
            self._owner.session_closed(self, reason)
        finally:
            waiters, self._closed_waiters = self._closed_waiters, []
            for waiter in waiters:
                waiter.callback(None)


def _command_name(command_id: int) -> str:
    try:
        return CommandId(command_id).name.lower()
    except ValueError:
        return f"command 0x{command_id:08X}"


def _reason_text(reason: Failure) -> str:
    value = reason.value
    text = str(value) if value is not None else ""
    return text or type(value).__name__
