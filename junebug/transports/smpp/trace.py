"""The SMPP PDUs about one message, summarised for its message log.

Each function turns a PDU into the decoded fields shown under ``details`` in a
message log entry (:mod:`junebug.stored_logs`): the command, the sequence
number, the addresses, ``data_coding``, ``esm_class``,
``registered_delivery``, the length of the content and, for a part of a long
message, its concatenation reference (UDH or SAR TLVs).  The content itself is
never copied (only its length), nor is anything of the bind: the system id
and password travel only in bind PDUs, which are not about a message.  They
are built only when a message log is being recorded, and never for
``enquire_link`` and the other session PDUs.
"""

from __future__ import annotations

from typing import Any

from junebug.transports.smpp.codec import UDHError, multipart_info
from junebug.transports.smpp.pdu import PDU, Tag, status_name
from junebug.transports.smpp.reports import DeliveryReceipt

__all__ = ["receipt_fields", "response_fields", "short_message_fields"]


def _content_length(pdu: PDU) -> int:
    payload = pdu.tlv(Tag.MESSAGE_PAYLOAD)
    if isinstance(payload, bytes) and payload:
        return len(payload)
    return len(getattr(pdu, "short_message", b"") or b"")


def short_message_fields(pdu: PDU) -> dict[str, Any]:
    """A ``submit_sm``/``deliver_sm``/``data_sm`` without its content."""
    fields: dict[str, Any] = {
        "command": pdu.command_name,
        "sequence_number": pdu.sequence_number,
        "source_addr": getattr(pdu, "source_addr", ""),
        "destination_addr": getattr(pdu, "destination_addr", ""),
        "data_coding": getattr(pdu, "data_coding", 0),
        "esm_class": getattr(pdu, "esm_class", 0),
        "registered_delivery": getattr(pdu, "registered_delivery", 0),
        "short_message_length": _content_length(pdu),
    }
    try:
        part = multipart_info(pdu)
    except UDHError:
        part = None
    if part is not None:
        fields["concatenation"] = {
            "ref": part.ref,
            "part": part.seqnum,
            "total": part.total,
        }
    return fields


def response_fields(pdu: PDU) -> dict[str, Any]:
    """A response (``submit_sm_resp``): its status and the SMSC's message id."""
    return {
        "command": pdu.command_name,
        "sequence_number": pdu.sequence_number,
        "command_status": status_name(pdu.command_status),
        "message_id": str(getattr(pdu, "message_id", "")),
    }


def receipt_fields(
    pdu: PDU, receipt: DeliveryReceipt, message_id: str
) -> dict[str, Any]:
    """A delivery receipt and the message it was matched to."""
    return {
        **short_message_fields(pdu),
        "receipted_message_id": receipt.message_id,
        "message_state": receipt.state,
        "delivery_status": receipt.status.value,
        "error": receipt.error,
        "correlated_message_id": message_id,
    }
