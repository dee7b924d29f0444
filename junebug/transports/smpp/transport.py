"""The ``smpp`` channel type: an ESME bound to one SMSC.

The transport keeps one SMPP connection up with a
:class:`~junebug.reconnecting.ReconnectingClient`: each connection is an
:class:`~junebug.transports.smpp.session.SmppSession` that binds, keeps the
link alive and unbinds (see :mod:`~junebug.transports.smpp.session`).  A
connection counts as ready once bound.  While connections or binds keep
failing, reconnection waits ``initial_reconnect_delay`` (after the first and
the second failure) and then longer, by ``reconnect_backoff_factor``, up to
``max_reconnect_delay``; a lost bound connection is retried after
``initial_reconnect_delay``.

MT: the lifecycle of one message
================================

The channel calls :meth:`SmppTransport.handle_outbound` for each MT it takes
from RabbitMQ, with up to ``prefetch`` calls running at once.  The AMQP
message is acknowledged when the call returns and requeued if it raises, so
the call returns only once the message's fate is published:

1. The addresses and content are checked and the text encoded (the first
   ``data_coding_preference`` that carries it unchanged, else UCS-2) and split
   on character boundaries.  A message that cannot be sent (an address that
   is not ASCII, text too long for ``short_message``) is nacked at once.
2. Each part waits for a bound session (at most ``submit_timeout`` seconds:
   then the call raises and the message goes back to the queue), a place in
   the window (``window_size`` outstanding ``submit_sm``), a unit of the
   channel's rate limit (``rate_limit_count`` counts ``submit_sm`` PDUs, a
   resent one too, through ``context.send_budget``), its turn under
   ``mt_tps``, and the end of any throttle pause.  Then it is sent.
3. ``ESME_RTHROTTLED`` or ``ESME_RMSGQFUL``: the part waits (``throttle_delay``,
   doubling up to ``max_throttle_delay``) and is sent again, as often as it
   takes; the status is ``throttled`` until every refused part went through.
   If the connection drops or a response does not come within
   ``smpp_response_timeout``, the part is sent again after the next bind (the
   SMSC may then see it twice: delivery is at least once).  Before every
   attempt the part checks that its AMQP delivery is alive
   (:func:`junebug.amqp.lease.check_delivery`): if the broker connection
   dropped meanwhile, RabbitMQ delivers the message again, so this copy gives
   up (``DeliveryLost``) instead of being submitted a second time.
4. When every part is answered: any other error status nacks the message with
   the status's name as the reason (``ESME_RINVDSTADR``); otherwise each
   part's SMSC message id is mapped to the message id in the channel's store
   (for ``third_party_id_expiry`` seconds) and the message is acked, with the
   SMSC ids, comma-separated, as ``sent_message_id``.  Then the call returns.

Until the call returns the message stays unacknowledged in RabbitMQ, so if the
process dies at any point it is delivered again; nothing about an MT in
flight lives only in this process.  ``stop()`` makes waiting calls raise, so
their messages are requeued.

MO
==

Every ``deliver_sm`` and ``data_sm`` is answered after it was handled.  In
order: a delivery receipt (the ``receipted_message_id``/``message_state`` TLVs,
else the text form) becomes a ``delivery_report`` for the message its SMSC id
maps to (a pending report leaves the mapping alone; a final one shortens its
life to ``final_dr_third_party_id_expiry``); a part of a multipart message is
kept in the channel's store (so a restart loses no answered part) until the
message is complete, for ``multipart_reassembly_ttl``; a PDU
with ``ussd_service_op`` is a USSD message whose session event comes from
``ussd_session_events`` and ``its_session_info``; anything else is an SMS.
Content that cannot be decoded is answered with ``deliver_sm_decoding_error``;
if publishing fails, with ``ESME_RX_T_APPN`` so that the SMSC tries again.

Status
======

Component ``smpp``: ``starting``, ``binding``, ``bind_failed``,
``bind_timeout`` and ``connection_lost`` are ``down``; ``bound`` and
``throttled_end`` are ``ok``; ``throttled`` is ``degraded`` (and is repeated
after a rebind while still throttled).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any, ClassVar, cast

from twisted.internet.defer import (
    Deferred,
    DeferredList,
    DeferredSemaphore,
    ensureDeferred,
)
from twisted.internet.endpoints import clientFromString
from twisted.internet.task import deferLater
from twisted.python.failure import Failure

from junebug.amqp.lease import check_delivery
from junebug.errors import SmscUnavailable, TransportStopped
from junebug.messages import UserMessage, ack, nack
from junebug.reconnecting import ReconnectingClient
from junebug.transports.interface import TransportContext
from junebug.transports.smpp.config import SmppConfig
from junebug.transports.smpp.inbound import InboundHandler
from junebug.transports.smpp.outbound import Rejected, SubmitEncoder
from junebug.transports.smpp.pacing import RateLimiter, ThrottleGate
from junebug.transports.smpp.pdu import (
    PDU,
    CommandStatus,
    PDUEncodeError,
    SubmitSM,
    status_name,
)
from junebug.transports.smpp.protocol import SmppClientFactory
from junebug.transports.smpp.sequencing import MAX_SEQUENCE_NUMBER, SequenceGenerator
from junebug.transports.smpp.session import SessionError, SessionSettings, SmppSession
from junebug.transports.smpp.trace import response_fields, short_message_fields

__all__ = ["SmppConfig", "SmppTransport", "SmscUnavailable", "TransportStopped"]

COMPONENT = "smpp"

_REFUSALS = frozenset({CommandStatus.ESME_RTHROTTLED, CommandStatus.ESME_RMSGQFUL})


class _PartGroup:
    """The parts of one MT: once one is rejected, the rest are not sent."""

    __slots__ = ("rejected",)

    def __init__(self) -> None:
        self.rejected = False


class SmppTransport:
    """An SMPP ESME; see the module docs for the MT lifecycle."""

    CONFIG_CLASS: ClassVar[type[Any]] = SmppConfig
    TRANSPORT_TYPE: ClassVar[str] = "sms"
    #: The rate limit counts ``submit_sm`` PDUs, spent in :meth:`_send_once`.
    SPENDS_SEND_BUDGET: ClassVar[bool] = True

    def __init__(
        self,
        context: TransportContext,
        config: SmppConfig,
        *,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self._context = context
        self._config = config
        self._clock = context.reactor
        self._log = context.log
        self._channel_id = context.channel_id
        self._jitter = jitter
        #: Records the PDUs of each MT in its message log (None: nothing to).
        self._record = context.record
        if len(config.password) > len(config.bind_password):
            self._log.warn(
                "SMPP passwords are at most 8 characters: only the first 8 are sent"
            )
        self._settings = SessionSettings(
            bind_class=config.bind_class,
            system_id=config.system_id,
            password=config.bind_password,
            system_type=config.system_type,
            interface_version=config.interface_version_number,
            addr_ton=config.addr_ton,
            addr_npi=config.addr_npi,
            address_range=config.address_range,
            bind_timeout=config.smpp_bind_timeout,
            enquire_link_interval=config.smpp_enquire_link_interval,
            response_timeout=config.smpp_response_timeout,
            unbind_timeout=config.smpp_unbind_timeout,
        )
        self._sequence = SequenceGenerator(random.randint(1, MAX_SEQUENCE_NUMBER))
        # MT
        self._encoder = SubmitEncoder(config)
        self._window = DeferredSemaphore(config.window_size)
        self._submit_response = context.metrics.submit_response
        self._rate = RateLimiter(self._clock, config.mt_tps)
        self._gate = ThrottleGate(
            self._clock,
            config.throttle_delay,
            config.max_throttle_delay,
            self._throttle_changed,
        )
        # MO and receipts
        self._inbound = InboundHandler(context, config, self.TRANSPORT_TYPE)
        # Sessions
        self._client: ReconnectingClient | None = None
        self._connected: SmppSession | None = None
        self._bound: SmppSession | None = None
        self._bound_waiters: list[Deferred[SmppSession]] = []
        self._failed_binds: set[SmppSession] = set()
        self._stopping = False
        self._stopped = False
        self._statuses = context.statuses

    # -- lifecycle ------------------------------------------------------------

    @property
    def window_size(self) -> int:
        """How many ``submit_sm`` may be in flight at once."""
        return self._config.window_size

    @property
    def window_in_use(self) -> int:
        """``submit_sm`` slots of the window taken (sent or about to be)."""
        return self._window.limit - self._window.tokens

    @property
    def is_bound(self) -> bool:
        """True while MT messages can be submitted."""
        return self._bound is not None and self._bound.is_bound

    @property
    def session(self) -> SmppSession | None:
        """The session of the current connection, if any."""
        return self._connected

    async def start(self) -> None:
        """Start connecting; returns at once (MT waits for the bind)."""
        self._status("down", "starting", "SMPP transport starting")
        self._client = ReconnectingClient(
            self._clock,
            clientFromString(self._clock, self._config.endpoint),
            SmppClientFactory(self._new_session),
            self._retry_delay,
            on_connect_failed=self._connection_failed,
        )
        self._client.start()

    async def stop(self) -> None:
        """Unbind, stop reconnecting and requeue the MT messages still waiting."""
        if self._stopped:
            return
        self._stopped = self._stopping = True
        self._inbound.stop()
        waiters, self._bound_waiters = self._bound_waiters, []
        for waiter in waiters:
            waiter.errback(TransportStopped("the SMPP transport is stopping"))
        session = self._connected
        if session is not None and not session.is_closed:
            session.unbind()
            closed = session.wait_closed()
            closed.addTimeout(self._config.smpp_unbind_timeout + 1.0, self._clock)
            try:
                await closed
            except Exception:
                self._log.warn("The SMPP connection did not close in time")
        if self._client is not None:
            await self._client.stop()
        await self._statuses.flush()

    def _new_session(self) -> SmppSession:
        return SmppSession(self._settings, self._clock, self, self._sequence, self._log)

    def _status(self, status: str, type_: str, message: str, **details: Any) -> None:
        self._statuses.report(
            COMPONENT,
            status,
            type_,
            message,
            details={"endpoint": self._config.endpoint, **details},
        )

    def _retry_delay(self, failures: int) -> float:
        """``failures`` since the last bind (0 once a bound link is lost)."""
        config = self._config
        delay = config.initial_reconnect_delay * config.reconnect_backoff_factor ** min(
            max(failures - 1, 0), 64
        )
        delay = min(delay, config.max_reconnect_delay)
        return float(delay * (0.9 + 0.2 * self._jitter()))

    def _connection_failed(self, failure: Failure) -> None:
        if not self._stopping:
            self._status(
                "down",
                "connection_lost",
                "Could not connect",
                reason=failure.getErrorMessage(),
            )

    # -- SessionOwner -----------------------------------------------------------

    def session_binding(self, session: SmppSession) -> None:
        self._connected = session
        self._status("down", "binding", "Binding")

    def session_bound(self, session: SmppSession) -> None:
        self._bound = session
        if self._client is not None:
            self._client.ready()
        self._log.info(
            "Bound to {endpoint} as {system_id}",
            endpoint=self._config.endpoint,
            system_id=self._config.system_id,
        )
        self._status("ok", "bound", "Successfully bound")
        if self._gate.active:
            self._status("degraded", "throttled", "Throttled by the SMSC")
        waiters, self._bound_waiters = self._bound_waiters, []
        for waiter in waiters:
            waiter.callback(session)

    def session_bind_failed(self, session: SmppSession, kind: str, reason: str) -> None:
        self._log.warn("SMPP bind failed: {reason}", reason=reason)
        self._failed_binds.add(session)
        if not self._stopping:
            self._status("down", kind, reason)

    def session_closed(self, session: SmppSession, reason: str) -> None:
        if self._bound is session:
            self._bound = None
        if self._connected is session:
            self._connected = None
        if session in self._failed_binds:
            # The bind failure said it all; "connection lost" would hide it.
            self._failed_binds.discard(session)
        elif not self._stopping:
            self._log.info("SMPP connection lost: {reason}", reason=reason)
            self._status("down", "connection_lost", "Connection lost", reason=reason)

    def request_received(self, session: SmppSession, pdu: PDU) -> Deferred[int]:
        return ensureDeferred(self._inbound.deliver(pdu))

    def _throttle_changed(self, active: bool) -> None:
        if active:
            self._status("degraded", "throttled", "Throttled by the SMSC")
        else:
            self._status("ok", "throttled_end", "No longer throttled")

    # -- MT -----------------------------------------------------------------------

    async def handle_outbound(self, message: UserMessage) -> None:
        """Submit one MT; returns once its ack or nack is published."""
        if self._stopping:
            raise TransportStopped("the SMPP transport is stopping")
        message_id = str(message.get("message_id"))
        try:
            templates = self._encoder.templates(message)
            responses = await self._submit_parts(templates, message_id)
        except Rejected as rejected:
            await self._nack(message_id, rejected.reason)
            return
        for response in responses:
            if response is not None and response.command_status:
                await self._nack(
                    message_id,
                    status_name(response.command_status),
                    {"smpp_command_status": response.command_status},
                )
                return
        sent_ids = ",".join(
            str(getattr(response, "message_id", "")) for response in responses
        )
        if not self._config.disable_ack:
            await self._context.publish_event(
                ack(message_id, sent_ids, self._channel_id)
            )

    async def _submit_parts(
        self, templates: list[dict[str, Any]], message_id: str
    ) -> list[PDU | None]:
        """Submit every part; raise if any part could not be settled."""
        group = _PartGroup()
        total = len(templates)
        if total == 1:
            return [await self._submit(templates[0], message_id, group, (1, 1))]
        outcomes = await DeferredList(
            [
                ensureDeferred(
                    self._submit(template, message_id, group, (index, total))
                )
                for index, template in enumerate(templates, 1)
            ],
            consumeErrors=True,
        )
        responses = []
        for succeeded, result in outcomes:
            if not succeeded:
                cast(Failure, result).raiseException()
            responses.append(result)
        return responses

    async def _nack(
        self, message_id: str, reason: str, metadata: dict[str, Any] | None = None
    ) -> None:
        self._log.info(
            "Nacking {message_id}: {reason}", message_id=message_id, reason=reason
        )
        event = nack(message_id, reason, self._channel_id)
        if metadata:
            event["transport_metadata"] = metadata
        await self._context.publish_event(event)

    async def _submit(
        self,
        template: dict[str, Any],
        message_id: str,
        group: _PartGroup,
        part: tuple[int, int],
    ) -> PDU | None:
        """Send one part until the SMSC answers it with something but a
        refusal; None if the part was not sent because another was rejected."""
        refused = False
        try:
            while True:
                if group.rejected:
                    return None
                session = await self._wait_bound()
                response = await self._send_once(
                    session, template, group, message_id, part
                )
                if response is None:
                    continue  # not sent or not answered: try again
                status = response.command_status
                if status in _REFUSALS:
                    delay = self._gate.refused(first=not refused)
                    refused = True
                    await deferLater(self._clock, delay, lambda: None)
                    continue
                self._gate.accepted()
                if status != CommandStatus.ESME_ROK:
                    return response
                smsc_id = str(getattr(response, "message_id", ""))
                if self._config.registered_delivery and smsc_id:
                    await self._inbound.remember(smsc_id, message_id)
                return response
        finally:
            if refused:
                self._gate.done()

    async def _send_once(
        self,
        session: SmppSession,
        template: dict[str, Any],
        group: _PartGroup,
        message_id: str,
        part: tuple[int, int],
    ) -> PDU | None:
        """One ``submit_sm`` within the window; None if it was not sent (or
        not answered) and should be tried again."""
        await self._window.acquire()
        try:
            await self._context.send_budget(1)
            await self._rate.acquire()
            while (pause := self._gate.wait()) is not None:
                await pause
            if group.rejected or not session.is_bound:
                return None
            # A delivery that died with its AMQP channel is being delivered
            # again: this copy must not reach the SMSC too.
            check_delivery()
            pdu = SubmitSM(sequence_number=session.next_sequence_number(), **template)
            record = self._record
            if record is not None:
                record(
                    message_id,
                    f"submit_sm part {part[0]} of {part[1]} sent "
                    f"(sequence number {pdu.sequence_number})",
                    {**short_message_fields(pdu), "part": part[0], "parts": part[1]},
                )
            sent_at = self._clock.seconds()
            try:
                response = await session.send_request(pdu)
            except PDUEncodeError as exc:
                group.rejected = True
                raise Rejected(f"Cannot encode submit_sm: {exc}") from None
            except SessionError as exc:
                self._log.info(
                    "submit_sm {sequence_number} of {message_id} not answered: {error}",
                    sequence_number=pdu.sequence_number,
                    message_id=message_id,
                    error=exc,
                )
                return None
            self._submit_response.observe(self._clock.seconds() - sent_at)
            status = response.command_status
            if record is not None:
                fields = response_fields(response)
                record(
                    message_id,
                    f"submit_sm_resp {fields['command_status']} for part "
                    f"{part[0]} of {part[1]} (sequence number "
                    f"{response.sequence_number}, SMSC message id "
                    f"{fields['message_id'] or 'none'})",
                    {**fields, "part": part[0], "parts": part[1]},
                )
            if status != CommandStatus.ESME_ROK and status not in _REFUSALS:
                # Before the window slot is released: a part waiting for it
                # must see that this message is already lost.
                group.rejected = True
            return response
        finally:
            self._window.release()

    async def _wait_bound(self) -> SmppSession:
        session = self._bound
        if session is not None and session.is_bound:
            return session
        if self._stopping:
            raise TransportStopped("the SMPP transport is stopping")
        waiter: Deferred[SmppSession] = Deferred()
        self._bound_waiters.append(waiter)
        timeout = self._config.submit_timeout
        timer = None
        if timeout is not None:
            timer = self._clock.callLater(timeout, self._give_up, waiter, timeout)
        try:
            return await waiter
        finally:
            if timer is not None and timer.active():
                timer.cancel()

    def _give_up(self, waiter: Deferred[SmppSession], timeout: float) -> None:
        if waiter in self._bound_waiters:
            self._bound_waiters.remove(waiter)
        if not waiter.called:
            waiter.errback(
                SmscUnavailable(f"not bound to the SMSC within {timeout:g}s")
            )
