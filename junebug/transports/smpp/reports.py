"""Delivery receipts: recognise them, read them, and correlate their ids.

An SMSC reports a message's fate in a ``deliver_sm`` (or ``data_sm``).  SMPP
3.4 gives the facts in two TLVs, ``receipted_message_id`` and
``message_state``; older SMSCs put them only in the text of the message,
in the form of SMPP 3.4 appendix B::

    id:IIIIIIIIII sub:SSS dlvrd:DDD submit date:YYMMDDhhmm
    done date:YYMMDDhhmm stat:DDDDDDD err:E text: . . .

:func:`receipt_from_pdu` reads the TLVs first and the text otherwise.  The text
parser wants ``id`` and ``stat``; every other field is optional (Jasmin leaves
out ``sub``, ``dlvrd`` and ``text``), keys may come in any order and any case,
and ``text:`` takes the rest of the receipt, since it quotes the message.

SMSCs disagree on message id bases: some answer ``submit_sm`` with a hex id
and quote it in decimal in the receipt (Kannel's ``msg-id-type``).
:class:`MessageIdNormaliser` turns both sides into one key; see
:func:`normalise_message_id` for the rule.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from typing import Final

import attrs

from junebug.transports.smpp.pdu import (
    ESM_CLASS_MESSAGE_TYPE_MASK,
    PDU,
    Tag,
)


class DeliveryStatus(enum.StrEnum):
    """The vumi ``delivery_status`` of a delivery report."""

    DELIVERED = "delivered"
    FAILED = "failed"
    PENDING = "pending"


#: ``message_state`` values (SMPP 3.4 section 5.2.28; 0 and 9 from SMPP 5.0).
MESSAGE_STATES: Final[Mapping[int, str]] = {
    0: "SCHEDULED",
    1: "ENROUTE",
    2: "DELIVERED",
    3: "EXPIRED",
    4: "DELETED",
    5: "UNDELIVERABLE",
    6: "ACCEPTED",
    7: "UNKNOWN",
    8: "REJECTED",
    9: "SKIPPED",
}

_DELIVERED = DeliveryStatus.DELIVERED
_FAILED = DeliveryStatus.FAILED
_PENDING = DeliveryStatus.PENDING

#: Receipt states (the 7-letter ``stat`` forms and the ``message_state``
#: names) and their delivery status.  Unknown states are ``pending``.
DEFAULT_STATUS_MAPPING: Final[Mapping[str, DeliveryStatus]] = {
    "DELIVRD": _DELIVERED,
    "DELIVERED": _DELIVERED,
    "EXPIRED": _FAILED,
    "DELETED": _FAILED,
    "UNDELIV": _FAILED,
    "UNDELIVERABLE": _FAILED,
    "REJECTD": _FAILED,
    "REJECTED": _FAILED,
    "UNKNOWN": _FAILED,
    "FAILED": _FAILED,
    "SKIPPED": _FAILED,
    "ENROUTE": _PENDING,
    "ACCEPTD": _PENDING,
    "ACCEPTED": _PENDING,
    "SCHEDULED": _PENDING,
}


def delivery_status(
    state: str | int,
    mapping: Mapping[str, DeliveryStatus | str] | None = None,
) -> DeliveryStatus:
    """The delivery status of a receipt state: a ``stat`` text such as
    ``DELIVRD`` (any case) or a ``message_state`` number.

    ``mapping`` adds to or overrides :data:`DEFAULT_STATUS_MAPPING` (its keys
    are compared in upper case).  A state no mapping knows is ``pending``,
    as in vumi: a later receipt can still settle it.
    """
    if isinstance(state, int):
        state = MESSAGE_STATES.get(state, str(state))
    key = state.strip().upper()
    if mapping:
        for name, mapped in mapping.items():
            if name.upper() == key:
                return DeliveryStatus(mapped)
    status = DEFAULT_STATUS_MAPPING.get(key)
    if status is not None:
        return status
    # As in vumi, an SMSC may send the vumi status itself ("pending").
    try:
        return DeliveryStatus(key.lower())
    except ValueError:
        return _PENDING


@attrs.frozen
class DeliveryReceipt:
    """What a delivery receipt says about one submitted message."""

    #: The SMSC's message id, as the receipt gives it (see
    #: :class:`MessageIdNormaliser` to correlate it).
    message_id: str
    #: The raw state: a ``stat`` text (``DELIVRD``) or a ``message_state`` name.
    state: str
    status: DeliveryStatus
    #: The ``err`` field, or the ``network_error_code`` TLV's error code.
    error: str | None = None
    submitted: str | None = None
    delivered: str | None = None
    submit_date: str | None = None
    done_date: str | None = None
    text: str | None = None


_KEYS: Final = {
    "id": "message_id",
    "sub": "submitted",
    "dlvrd": "delivered",
    "submit date": "submit_date",
    "done date": "done_date",
    "stat": "state",
    "err": "error",
    "text": "text",
}
_KEY_PATTERN: Final = re.compile(
    r"(?:^|(?<=\s))(id|sub|dlvrd|submit[ _]date|done[ _]date|stat|err|text)\s*:",
    re.IGNORECASE,
)


def parse_receipt_text(
    text: str,
    mapping: Mapping[str, DeliveryStatus | str] | None = None,
) -> DeliveryReceipt | None:
    """Read a text receipt (``id:... stat:...``); ``None`` if it is not one."""
    fields: dict[str, str] = {}
    matches = list(_KEY_PATTERN.finditer(text))
    for index, match in enumerate(matches):
        key = _KEYS[match.group(1).lower().replace("_", " ")]
        if key == "text":
            fields.setdefault(key, text[match.end() :].lstrip(" "))
            break
        end = matches[index + 1].start() if index + 1 < len(matches) else len(text)
        fields.setdefault(key, text[match.end() : end].strip())
    message_id = fields.pop("message_id", "")
    state = fields.pop("state", "").upper()
    if not message_id or not state:
        return None
    return DeliveryReceipt(
        message_id=message_id,
        state=state,
        status=delivery_status(state, mapping),
        **fields,
    )


def is_receipt(pdu: PDU) -> bool:
    """True if ``pdu`` claims to be a receipt: both receipt TLVs, or an
    ``esm_class`` message type of receipt or SME acknowledgement."""
    if pdu.tlv(Tag.RECEIPTED_MESSAGE_ID) is not None and (
        pdu.tlv(Tag.MESSAGE_STATE) is not None
    ):
        return True
    return bool(getattr(pdu, "esm_class", 0) & ESM_CLASS_MESSAGE_TYPE_MASK)


def receipt_from_pdu(
    pdu: PDU,
    *,
    use_esm_class: bool = True,
    mapping: Mapping[str, DeliveryStatus | str] | None = None,
) -> DeliveryReceipt | None:
    """The receipt a ``deliver_sm``/``data_sm`` carries, or ``None``.

    The ``receipted_message_id`` and ``message_state`` TLVs win; the text
    (``message_payload`` or ``short_message``, read as Latin-1 so that it
    always decodes) then only adds the optional fields.  Without both TLVs,
    the text is read only if ``esm_class`` marks a receipt, unless
    ``use_esm_class`` is false.
    """
    content = pdu.tlv(Tag.MESSAGE_PAYLOAD)
    if not isinstance(content, bytes):
        content = getattr(pdu, "short_message", b"")
    text = content.decode("latin-1") if isinstance(content, bytes) else ""
    receipted_id = pdu.tlv(Tag.RECEIPTED_MESSAGE_ID)
    message_state = pdu.tlv(Tag.MESSAGE_STATE)
    if isinstance(receipted_id, str) and isinstance(message_state, int):
        from_text = parse_receipt_text(text, mapping)
        error = from_text.error if from_text else None
        network_error = parse_network_error_code(pdu.tlv(Tag.NETWORK_ERROR_CODE))
        if network_error is not None:
            error = str(network_error[1])
        state = MESSAGE_STATES.get(message_state, str(message_state))
        receipt = DeliveryReceipt(
            message_id=receipted_id,
            state=state,
            status=delivery_status(state, mapping),
        )
        if from_text is None:
            return attrs.evolve(receipt, error=error)
        return attrs.evolve(
            from_text,
            message_id=receipt.message_id,
            state=receipt.state,
            status=receipt.status,
            error=error,
        )
    if use_esm_class and not is_receipt(pdu):
        return None
    return parse_receipt_text(text, mapping)


def parse_network_error_code(value: object) -> tuple[int, int] | None:
    """``(network_type, error_code)`` from a 3-octet ``network_error_code``."""
    if not isinstance(value, bytes) or len(value) != 3:
        return None
    return value[0], int.from_bytes(value[1:], "big")


# --------------------------------------------------------------------------
# Message ids


class IdBase(enum.StrEnum):
    """How an SMSC writes message ids on one side of the exchange."""

    #: Compare as given (after trimming blanks and NULs): vumi's behaviour.
    VERBATIM = "verbatim"
    #: A hexadecimal number, in any case and with any leading zeros.
    HEX = "hex"
    #: A decimal number, with any leading zeros.
    DECIMAL = "decimal"


_HEX_ID: Final = re.compile(r"(?:0[xX])?[0-9A-Fa-f]+")
_DECIMAL_ID: Final = re.compile(r"[0-9]+")


def normalise_message_id(message_id: str, base: IdBase | str = IdBase.VERBATIM) -> str:
    """The key under which a message id is correlated.

    The rule: trim blanks and NULs; then, for ``hex`` or ``decimal``, read
    the id as a number in that base and write it in decimal without leading
    zeros.  So a hex ``submit_sm_resp`` id and the decimal id of its receipt
    meet on the same key (``"1A2b"`` and ``"6699"`` both give ``"6699"``).
    An id that is not a number in the configured base stays as it is, so
    that a misconfigured base degrades to the verbatim rule rather than
    losing receipts.  ``verbatim`` is the default because no rule can tell
    an SMSC's bases apart without being told: ``"10"`` is a valid id in both.
    """
    trimmed = message_id.strip().strip("\x00").strip()
    base = IdBase(base)
    if base is IdBase.HEX and _HEX_ID.fullmatch(trimmed):
        return str(int(trimmed, 16))
    if base is IdBase.DECIMAL and _DECIMAL_ID.fullmatch(trimmed):
        return str(int(trimmed, 10))
    return trimmed


@attrs.frozen
class MessageIdNormaliser:
    """Correlates ``submit_sm_resp`` ids with receipt ids.

    Configure the base each side uses (as Kannel's ``msg-id-type`` does);
    both methods return keys that compare equal for the same message.
    """

    submit_sm_resp_base: IdBase = attrs.field(default=IdBase.VERBATIM, converter=IdBase)
    receipt_base: IdBase = attrs.field(default=IdBase.VERBATIM, converter=IdBase)

    def from_submit_sm_resp(self, message_id: str) -> str:
        """The key for the ``message_id`` of a ``submit_sm_resp``."""
        return normalise_message_id(message_id, self.submit_sm_resp_base)

    def from_receipt(self, message_id: str) -> str:
        """The key for the message id quoted by a delivery receipt."""
        return normalise_message_id(message_id, self.receipt_base)
