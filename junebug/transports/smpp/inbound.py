"""What the SMSC sends us: MO messages and delivery receipts.

:class:`InboundHandler` handles each ``deliver_sm`` and ``data_sm`` and
returns the ``command_status`` of its response, in this order:

1. A delivery receipt (the ``receipted_message_id`` and ``message_state``
   TLVs, else the text form, else ``delivery_report_regex``) becomes a
   ``delivery_report`` event for the message its SMSC id maps to.  A receipt
   that ``esm_class`` marks but nobody can read is answered and dropped.
2. A part of a multipart message (SAR TLVs or a concatenation UDH) is kept
   in the channel's store until the message is complete, for
   ``multipart_reassembly_ttl`` seconds (see
   :mod:`junebug.transports.smpp.multipart`).
3. Everything else is decoded with the channel's MO codecs and published as
   a ``user_message``; with ``ussd_service_op`` it is USSD and its session
   event comes from ``ussd_session_events`` and ``its_session_info``.

Content that cannot be decoded is answered with ``deliver_sm_decoding_error``.
A failure to publish propagates, so the session answers ``ESME_RX_T_APPN`` and
the SMSC delivers again.

Correlation: :meth:`InboundHandler.remember` maps an SMSC message id to our
message id in the channel's store for ``third_party_id_expiry`` seconds.  A
pending report leaves the mapping alone; a final one (delivered or failed)
shortens its life to ``final_dr_third_party_id_expiry`` in the same round
trip as the lookup, so a late duplicate still resolves.  While the write is
in flight the mapping is also held in memory, so a receipt that overtakes it
is not lost.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeVar

from twisted.internet.defer import CancelledError, Deferred, ensureDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import deferLater

from junebug.messages import SESSION_CLOSE, delivery_report, user_message
from junebug.stores import keys
from junebug.transports.interface import TransportContext
from junebug.transports.smpp.codec import (
    UDHError,
    UnknownDataCodingError,
    message_content,
    multipart_info,
)
from junebug.transports.smpp.config import SmppConfig
from junebug.transports.smpp.multipart import StoredReassembler
from junebug.transports.smpp.pdu import PDU, CommandStatus, Tag
from junebug.transports.smpp.reports import (
    DeliveryReceipt,
    DeliveryStatus,
    MessageIdNormaliser,
    delivery_status,
    is_receipt,
    receipt_from_pdu,
)
from junebug.transports.smpp.trace import receipt_fields, short_message_fields

__all__ = ["InboundHandler"]

#: How long store operations of the receipt path are retried (a Redis restart).
STORE_RETRY_FOR: Final = 30.0
#: How long a receipt waits for the mapping of an SMSC id it does not know yet.
RECEIPT_WAIT: Final = 3.0

T = TypeVar("T")

#: How many accepted parts keep their time for the submit->receipt histogram.
RECEIPT_TIMES: Final = 100_000


async def _with_retries(
    clock: IReactorTime,
    operation: Callable[[], Awaitable[T]],
    within: float = STORE_RETRY_FOR,
) -> T:
    """Run ``operation``, retrying failures with backoff for ``within`` seconds."""
    delay = 0.1
    waited = 0.0
    while True:
        try:
            return await operation()
        except CancelledError:
            raise
        except Exception:
            if waited >= within:
                raise
        await deferLater(clock, delay, lambda: None)
        waited += delay
        delay = min(delay * 2, 2.0)


_FINAL: Final = frozenset({DeliveryStatus.DELIVERED, DeliveryStatus.FAILED})


class InboundHandler:
    """MO messages and receipts of one channel; see the module docs."""

    def __init__(
        self, context: TransportContext, config: SmppConfig, transport_type: str
    ) -> None:
        self._context = context
        self._config = config
        self._transport_type = transport_type
        self._log = context.log
        self._store = context.store
        self._codings = config.mo_data_codings()
        self._ids = MessageIdNormaliser(
            config.submit_sm_resp_id_base, config.delivery_report_id_base
        )
        self._status_mapping = config.receipt_status_mapping
        regex = config.receipt_regex
        self._receipt_regex = re.compile(regex) if regex is not None else None
        self._key_prefix = (
            config.split_bind_prefix or f"{config.system_id}@{context.channel_id}"
        )
        self._reassembler = StoredReassembler(
            context.store,
            self._key_prefix,
            config.multipart_reassembly_ttl,
            self._codings,
        )
        self._ussd_events = {
            f"{int(op, 16):02x}": event
            for op, event in config.ussd_session_events.items()
        }
        #: SMSC ids whose mapping is being written, so a fast receipt finds it.
        self._recent: dict[str, str] = {}
        #: The shorter life a final receipt gave a mapping still being written.
        self._final_ttl: dict[str, int] = {}
        self._retrying: dict[str, Deferred[None]] = {}
        #: When each recent part was accepted, for the submit->receipt
        #: histogram: in memory only, the oldest dropped past RECEIPT_TIMES.
        self._accepted_at: OrderedDict[str, float] = OrderedDict()
        self._submit_receipt = context.metrics.submit_receipt

    # -- correlation ---------------------------------------------------------

    def key(self, smsc_id: str) -> str:
        """The store key mapping a (normalised) SMSC id to our message id."""
        return keys.smpp_remote_message(self._key_prefix, smsc_id)

    async def remember(self, smsc_id: str, message_id: str) -> None:
        """Map the SMSC id of a submitted part to our message id.

        The message was sent, and sending it again would be worse than losing
        its receipts, so a failed write is not raised: the mapping stays in
        memory (where receipts find it) and the write is retried in the
        background for up to ``STORE_RETRY_FOR`` seconds, which rides out a
        Redis restart.
        """
        key_id = self._ids.from_submit_sm_resp(smsc_id)
        self._recent[key_id] = message_id
        self._accepted_at[key_id] = self._context.reactor.seconds()
        if len(self._accepted_at) > RECEIPT_TIMES:
            self._accepted_at.popitem(last=False)
        try:
            await self._store.set(
                self.key(key_id), message_id, ttl=self._config.third_party_id_expiry
            )
        except Exception as exc:
            self._log.warn(
                "Could not store the SMSC id {smsc_id} of {message_id} ({error}); "
                "retrying",
                smsc_id=smsc_id,
                message_id=message_id,
                error=exc,
            )
            self._retrying[key_id] = ensureDeferred(
                self._remember_later(key_id, message_id)
            )
            return
        await self._written(key_id, message_id)

    async def _remember_later(self, key_id: str, message_id: str) -> None:
        try:
            await _with_retries(
                self._context.reactor,
                lambda: self._store.set(
                    self.key(key_id),
                    message_id,
                    ttl=self._config.third_party_id_expiry,
                ),
            )
        except Exception:
            self._log.failure(
                "Gave up storing the SMSC id {smsc_id} of {message_id}",
                smsc_id=key_id,
                message_id=message_id,
            )
            self._forget(key_id, message_id)
        else:
            await self._written(key_id, message_id)
        finally:
            self._retrying.pop(key_id, None)

    def _forget(self, key_id: str, message_id: str) -> int | None:
        """Drop the in-memory mapping; the life a final receipt asked for."""
        if self._recent.get(key_id) == message_id:
            del self._recent[key_id]
        return self._final_ttl.pop(key_id, None)

    async def _written(self, key_id: str, message_id: str) -> None:
        """The mapping is in the store: a final receipt that found it in
        memory meanwhile now shortens its life there."""
        ttl = self._forget(key_id, message_id)
        if ttl is None:
            return
        try:
            await self._store.get(self.key(key_id), ttl=ttl)
        except Exception as exc:
            # Harmless: the mapping then lives third_party_id_expiry.
            self._log.warn(
                "Could not shorten the life of SMSC id {smsc_id} ({error})",
                smsc_id=key_id,
                error=exc,
            )

    def stop(self) -> None:
        """Cancel background writes (their mappings are lost with the process)."""
        for pending in list(self._retrying.values()):
            pending.cancel()

    # -- deliver_sm / data_sm ------------------------------------------------

    async def deliver(self, pdu: PDU) -> int:
        """Handle one ``deliver_sm``/``data_sm``; return the response status."""
        config = self._config
        use_esm_class = config.receipts_use_esm_class
        receipt = receipt_from_pdu(
            pdu, use_esm_class=use_esm_class, mapping=self._status_mapping
        )
        if (
            receipt is None
            and self._receipt_regex is not None
            and (is_receipt(pdu) or not use_esm_class)
        ):
            receipt = self._regex_receipt(pdu)
        if receipt is not None:
            return await self._handle_receipt(receipt, pdu)
        if use_esm_class and is_receipt(pdu):
            self._log.warn("Unreadable delivery receipt: {pdu!r}", pdu=pdu)
            return CommandStatus.ESME_ROK
        data_coding = int(getattr(pdu, "data_coding", 0))
        source = str(getattr(pdu, "source_addr", ""))
        destination = str(getattr(pdu, "destination_addr", ""))
        transport_type, session_event, metadata = self._ussd_session(pdu)

        async def publish(text: str) -> None:
            message = user_message(
                to_addr=destination,
                from_addr=source,
                content=text,
                transport_name=self._context.channel_id,
                transport_type=transport_type,
                session_event=session_event,
                transport_metadata=metadata,
            )
            record = self._context.record
            if record is not None:
                record(
                    message["message_id"],
                    f"{pdu.command_name} received "
                    f"(sequence number {pdu.sequence_number})",
                    short_message_fields(pdu),
                )
            await self._context.publish_inbound(message)

        try:
            part = multipart_info(pdu)
            if part is not None and part.total > 1:
                await self._reassembler.add(
                    source, destination, part, data_coding, publish
                )
                return CommandStatus.ESME_ROK
            content = part.data if part is not None else message_content(pdu)
            if not content and not config.empty_messages_allowed:
                raise ValueError("empty message")
            text = self._codings.decode(content, data_coding)
        except (UDHError, UnknownDataCodingError, ValueError) as exc:
            self._log.warn(
                "Cannot decode an MO from {source}: {error}", source=source, error=exc
            )
            return config.decoding_error_status
        await publish(text)
        return CommandStatus.ESME_ROK

    def _ussd_session(self, pdu: PDU) -> tuple[str, str | None, dict[str, Any]]:
        """``(transport_type, session_event, transport_metadata)`` of an MO."""
        op = pdu.tlv(Tag.USSD_SERVICE_OP)
        if not isinstance(op, int):
            return self._transport_type, None, {}
        op_hex = f"{op:02x}"
        session_event = self._ussd_events.get(op_hex, SESSION_CLOSE)
        metadata: dict[str, Any] = {"ussd_service_op": op_hex}
        info = pdu.tlv(Tag.ITS_SESSION_INFO)
        if isinstance(info, int):
            if info & 1:  # the end-of-session bit
                session_event = SESSION_CLOSE
            metadata["session_info"] = f"{info & 0xFFFE:04x}"
        return "ussd", session_event, metadata

    # -- receipts ------------------------------------------------------------

    def _regex_receipt(self, pdu: PDU) -> DeliveryReceipt | None:
        assert self._receipt_regex is not None
        payload = pdu.tlv(Tag.MESSAGE_PAYLOAD)
        if not isinstance(payload, bytes):
            payload = getattr(pdu, "short_message", b"")
        match = self._receipt_regex.search(bytes(payload).decode("latin-1"))
        if match is None:
            return None
        groups = match.groupdict()
        state = str(groups["stat"]).upper()
        return DeliveryReceipt(
            message_id=str(groups["id"]),
            state=state,
            status=delivery_status(state, self._status_mapping),
            error=groups.get("err"),
        )

    async def _lookup(self, key_id: str, ttl: int | None) -> str | None:
        """Our message id for an SMSC id, waiting briefly for a mapping that
        is still being made: an SMSC may send the receipt right behind the
        ``submit_sm_resp``, before that response has been fully handled."""
        delay = 0.05
        waited = 0.0
        while True:
            message_id = self._recent.get(key_id)
            if message_id is not None and ttl is not None:
                # Still being written: cut its life once it is (_written).
                self._final_ttl[key_id] = ttl
            if message_id is None:
                # One round trip: read the mapping and, for a final report,
                # shorten its life (a pending report leaves it alone).
                message_id = await _with_retries(
                    self._context.reactor,
                    lambda: self._store.get(self.key(key_id), ttl=ttl),
                )
            if message_id is not None or waited >= RECEIPT_WAIT:
                return message_id
            await deferLater(self._context.reactor, delay, lambda: None)
            waited += delay
            delay = min(delay * 2, 1.0)

    async def _handle_receipt(self, receipt: DeliveryReceipt, pdu: PDU) -> int:
        key_id = self._ids.from_receipt(receipt.message_id)
        final = receipt.status in _FINAL
        accepted_at = self._accepted_at.pop(key_id, None) if final else None
        if accepted_at is not None:
            self._submit_receipt.observe(self._context.reactor.seconds() - accepted_at)
        ttl = self._config.final_dr_third_party_id_expiry if final else None
        message_id = await self._lookup(key_id, ttl)
        if message_id is None:
            self._log.info(
                "Delivery receipt for unknown SMSC id {smsc_id}",
                smsc_id=receipt.message_id,
            )
            return CommandStatus.ESME_ROK
        record = self._context.record
        if record is not None:
            record(
                message_id,
                f"{pdu.command_name} receipt {receipt.state} for SMSC message id "
                f"{receipt.message_id} (sequence number {pdu.sequence_number}): "
                f"{receipt.status.value}",
                receipt_fields(pdu, receipt, message_id),
            )
        if not self._config.disable_delivery_report:
            channel_id = self._context.channel_id
            event = delivery_report(message_id, receipt.status.value, channel_id)
            metadata: dict[str, Any] = {"smpp_delivery_status": receipt.state}
            if receipt.error is not None:
                metadata["smpp_error"] = receipt.error
            event["transport_metadata"] = metadata
            await self._context.publish_event(event)
        return CommandStatus.ESME_ROK
