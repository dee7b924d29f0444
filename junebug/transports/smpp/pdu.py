"""SMPP 3.4 PDUs: the data model and the binary codec.

Every PDU is a 16-octet header followed by a body::

    command_length   4 octets   length of the whole PDU, header included
    command_id       4 octets   what the PDU is; responses have bit 31 set
    command_status   4 octets   0 in requests; the outcome in responses
    sequence_number  4 octets   pairs a response with its request

The body is a fixed list of *mandatory* parameters (1- or 4-octet big-endian
integers, NUL-terminated ``C-Octet`` strings with a maximum length that counts
the NUL, and ``short_message`` preceded by its 1-octet ``sm_length``), followed
by *optional* parameters: TLVs of a 2-octet tag, a 2-octet length and the value.

Each PDU is a frozen attrs class holding its header fields (``command_id`` is
a class constant), its mandatory parameters by spec name, and ``tlvs``: a
mapping from tag to value.  Known tags (:class:`Tag`) decode to ``int`` or
``str`` as the spec types them; any other tag is kept as raw ``bytes``, so an
unknown TLV survives a round trip.

:func:`encode_pdu` and :func:`decode_pdu` convert one PDU; :class:`PDUFramer`
cuts PDUs out of a byte stream.  Decoding failures raise
:class:`PDUDecodeError`, which carries the ``command_status`` and (when the
header was readable) the ``sequence_number`` needed to answer with a
``generic_nack``; :meth:`PDUDecodeError.generic_nack` builds that answer.

Why this module is long: most of it is one declarative table, a small class
for each of the 3.4 specification's PDUs and an enum for each of its code
lists.  Splitting the table would scatter one specification over several
files and gain nothing; the codec that reads it is short.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar, Final, TypeAlias

import attrs

from junebug.transports.smpp.constants import (
    CommandId,
    CommandStatus,
    Tag,
    status_description,
    status_name,
)

__all__ = [
    "ESM_CLASS_DELIVERY_RECEIPT",
    "ESM_CLASS_MESSAGE_TYPE_MASK",
    "ESM_CLASS_UDHI",
    "HEADER_LENGTH",
    "INTERFACE_VERSION_34",
    "MAX_COMMAND_LENGTH",
    "MAX_SHORT_MESSAGE_LENGTH",
    "PDU",
    "PDU_CLASSES",
    "AlertNotification",
    "BindReceiver",
    "BindReceiverResp",
    "BindTransceiver",
    "BindTransceiverResp",
    "BindTransmitter",
    "BindTransmitterResp",
    "CancelSM",
    "CancelSMResp",
    "CommandId",
    "CommandStatus",
    "DataSM",
    "DataSMResp",
    "DeliverSM",
    "DeliverSMResp",
    "EnquireLink",
    "EnquireLinkResp",
    "FramingError",
    "GenericNack",
    "Outbind",
    "PDUDecodeError",
    "PDUEncodeError",
    "PDUFramer",
    "QuerySM",
    "QuerySMResp",
    "ReplaceSM",
    "ReplaceSMResp",
    "SubmitSM",
    "SubmitSMResp",
    "TLVValue",
    "Tag",
    "Unbind",
    "UnbindResp",
    "decode_header",
    "decode_pdu",
    "encode_pdu",
    "encode_tlv",
    "status_description",
    "status_name",
]

HEADER_LENGTH: Final = 16
#: The longest PDU the framer accepts by default.  SMPP fixes no maximum, but
#: the largest legitimate PDU (a ``message_payload`` of 64 KiB) fits in this.
MAX_COMMAND_LENGTH: Final = 0x10000 + 0x400
#: ``sm_length`` may not exceed this (SMPP 3.4 section 5.2.22).
MAX_SHORT_MESSAGE_LENGTH: Final = 254
#: The value of ``interface_version`` for SMPP 3.4.
INTERFACE_VERSION_34: Final = 0x34
#: The ``esm_class`` bit telling that ``short_message`` starts with a UDH.
ESM_CLASS_UDHI: Final = 0x40
#: The ``esm_class`` bits 2..5 (message type) that mark receipts and acks.
ESM_CLASS_MESSAGE_TYPE_MASK: Final = 0x3C
#: The ``esm_class`` message type of an SMSC delivery receipt.
ESM_CLASS_DELIVERY_RECEIPT: Final = 0x04

_HEADER: Final = struct.Struct(">IIII")
_TLV_HEADER: Final = struct.Struct(">HH")
_RESPONSE_BIT: Final = 0x80000000


#: A TLV value: ``int`` for integer tags, ``str`` for C-Octet string tags and
#: ``bytes`` for octet-string tags and for every tag not in :class:`Tag`.
TLVValue: TypeAlias = int | str | bytes

# How each known tag's value is typed: an integer of 1, 2 or 4 octets, or a
# C-Octet string (maximum length counts the NUL).  Unlisted tags are octets.
# ``ussd_service_op`` and ``its_session_info`` are octet strings of 1 and 2
# octets in the spec; they are read as integers because that is how they are
# used (``its_session_info`` bit 0 is the end-of-session flag).
_TLV_INT_SIZES: Final[Mapping[int, int]] = {
    Tag.DEST_ADDR_SUBUNIT: 1,
    Tag.DEST_NETWORK_TYPE: 1,
    Tag.DEST_BEARER_TYPE: 1,
    Tag.DEST_TELEMATICS_ID: 2,
    Tag.SOURCE_ADDR_SUBUNIT: 1,
    Tag.SOURCE_NETWORK_TYPE: 1,
    Tag.SOURCE_BEARER_TYPE: 1,
    Tag.QOS_TIME_TO_LIVE: 4,
    Tag.PAYLOAD_TYPE: 1,
    Tag.MS_MSG_WAIT_FACILITIES: 1,
    Tag.PRIVACY_INDICATOR: 1,
    Tag.USER_MESSAGE_REFERENCE: 2,
    Tag.USER_RESPONSE_CODE: 1,
    Tag.SOURCE_PORT: 2,
    Tag.DESTINATION_PORT: 2,
    Tag.SAR_MSG_REF_NUM: 2,
    Tag.LANGUAGE_INDICATOR: 1,
    Tag.SAR_TOTAL_SEGMENTS: 1,
    Tag.SAR_SEGMENT_SEQNUM: 1,
    Tag.SC_INTERFACE_VERSION: 1,
    Tag.CALLBACK_NUM_PRES_IND: 1,
    Tag.NUMBER_OF_MESSAGES: 1,
    Tag.DPF_RESULT: 1,
    Tag.SET_DPF: 1,
    Tag.MS_AVAILABILITY_STATUS: 1,
    Tag.DELIVERY_FAILURE_REASON: 1,
    Tag.MORE_MESSAGES_TO_SEND: 1,
    Tag.MESSAGE_STATE: 1,
    Tag.USSD_SERVICE_OP: 1,
    Tag.DISPLAY_TIME: 1,
    Tag.SMS_SIGNAL: 2,
    Tag.MS_VALIDITY: 1,
    Tag.ITS_REPLY_TYPE: 1,
    Tag.ITS_SESSION_INFO: 2,
}
_TLV_CSTRING_MAX: Final[Mapping[int, int]] = {
    Tag.ADDITIONAL_STATUS_INFO_TEXT: 256,
    Tag.RECEIPTED_MESSAGE_ID: 65,
}


class PDUEncodeError(ValueError):
    """A PDU cannot be encoded: a value is out of range or too long."""


class PDUDecodeError(Exception):
    """Bytes that are not a valid PDU.

    ``command_status`` is the error to answer with (in a ``generic_nack``, or
    in the matching response when the command is known); ``command_id`` and
    ``sequence_number`` are set when the header could be read.
    """

    def __init__(
        self,
        message: str,
        *,
        command_status: int,
        command_id: int | None = None,
        sequence_number: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.command_status = command_status
        self.command_id = command_id
        self.sequence_number = sequence_number

    def generic_nack(self) -> GenericNack:
        """The ``generic_nack`` answering the bad PDU (sequence 0 if unknown)."""
        return GenericNack(
            sequence_number=self.sequence_number or 0,
            command_status=self.command_status,
        )

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.message!r}, "
            f"command_status={status_name(self.command_status)}, "
            f"command_id={self.command_id!r}, "
            f"sequence_number={self.sequence_number!r})"
        )


class FramingError(PDUDecodeError):
    """The byte stream has an impossible ``command_length``.

    The stream cannot be resynchronised: answer with :meth:`generic_nack` if
    desired, then drop the connection.
    """


class _BodyError(Exception):
    """Raised while reading a body; :func:`decode_pdu` adds the header."""

    def __init__(self, message: str, command_status: int) -> None:
        super().__init__(message)
        self.message = message
        self.command_status = command_status


# --------------------------------------------------------------------------
# Mandatory parameter descriptions


class _Kind(enum.Enum):
    INT1 = 1
    CSTRING = "cstring"
    SHORT_MESSAGE = "short_message"


@attrs.frozen
class _Param:
    name: str
    kind: _Kind
    max_length: int = 0  # C-Octet strings: the maximum, NUL included


def _int1(name: str) -> _Param:
    return _Param(name, _Kind.INT1)


def _cstr(name: str, max_length: int) -> _Param:
    return _Param(name, _Kind.CSTRING, max_length)


_SHORT_MESSAGE: Final = _Param("short_message", _Kind.SHORT_MESSAGE)


def _freeze_tlvs(tlvs: Mapping[int, TLVValue]) -> Mapping[int, TLVValue]:
    """Copy TLVs into a new dict keyed by plain ``int`` tags."""
    return {int(tag): value for tag, value in tlvs.items()}


# --------------------------------------------------------------------------
# The PDU classes


@attrs.frozen(kw_only=True)
class PDU:
    """The fields every PDU has; subclasses add the body's parameters."""

    command_id: ClassVar[CommandId]
    #: The mandatory parameters of the body, in wire order.
    body: ClassVar[tuple[_Param, ...]] = ()

    sequence_number: int
    command_status: int = 0
    tlvs: Mapping[int, TLVValue] = attrs.field(factory=dict, converter=_freeze_tlvs)

    @property
    def command_name(self) -> str:
        """The spec's name of this command, e.g. ``submit_sm_resp``."""
        return self.command_id.name.lower()

    @property
    def is_response(self) -> bool:
        """True for responses (``*_resp`` and ``generic_nack``)."""
        return bool(self.command_id & _RESPONSE_BIT)

    def tlv(self, tag: int, default: TLVValue | None = None) -> TLVValue | None:
        """The value of optional parameter ``tag``, or ``default``."""
        return self.tlvs.get(tag, default)

    def response(self, command_status: int = 0, **fields: Any) -> PDU:
        """The response to this request, with the same ``sequence_number``."""
        response_class = PDU_CLASSES.get(self.command_id | _RESPONSE_BIT)
        if self.is_response or response_class is None:
            raise TypeError(f"{self.command_name} has no response PDU")
        return response_class(
            sequence_number=self.sequence_number,
            command_status=command_status,
            **fields,
        )


@attrs.frozen(kw_only=True)
class GenericNack(PDU):
    """``generic_nack``: the answer to a PDU that could not be understood."""

    command_id = CommandId.GENERIC_NACK


_BIND_BODY: Final = (
    _cstr("system_id", 16),
    _cstr("password", 9),
    _cstr("system_type", 13),
    _int1("interface_version"),
    _int1("addr_ton"),
    _int1("addr_npi"),
    _cstr("address_range", 41),
)


@attrs.frozen(kw_only=True)
class _Bind(PDU):
    body = _BIND_BODY

    system_id: str = ""
    password: str = ""
    system_type: str = ""
    interface_version: int = INTERFACE_VERSION_34
    addr_ton: int = 0
    addr_npi: int = 0
    address_range: str = ""


@attrs.frozen(kw_only=True)
class _BindResp(PDU):
    body = (_cstr("system_id", 16),)

    system_id: str = ""


@attrs.frozen(kw_only=True)
class BindTransmitter(_Bind):
    """``bind_transmitter``: bind to submit messages only."""

    command_id = CommandId.BIND_TRANSMITTER


@attrs.frozen(kw_only=True)
class BindTransmitterResp(_BindResp):
    """``bind_transmitter_resp``; may carry the ``sc_interface_version`` TLV."""

    command_id = CommandId.BIND_TRANSMITTER_RESP


@attrs.frozen(kw_only=True)
class BindReceiver(_Bind):
    """``bind_receiver``: bind to receive messages only."""

    command_id = CommandId.BIND_RECEIVER


@attrs.frozen(kw_only=True)
class BindReceiverResp(_BindResp):
    """``bind_receiver_resp``."""

    command_id = CommandId.BIND_RECEIVER_RESP


@attrs.frozen(kw_only=True)
class BindTransceiver(_Bind):
    """``bind_transceiver``: bind to submit and receive."""

    command_id = CommandId.BIND_TRANSCEIVER


@attrs.frozen(kw_only=True)
class BindTransceiverResp(_BindResp):
    """``bind_transceiver_resp``."""

    command_id = CommandId.BIND_TRANSCEIVER_RESP


@attrs.frozen(kw_only=True)
class Outbind(PDU):
    """``outbind``: the SMSC asks the ESME to bind as a receiver."""

    command_id = CommandId.OUTBIND
    body = (_cstr("system_id", 16), _cstr("password", 9))

    system_id: str = ""
    password: str = ""


@attrs.frozen(kw_only=True)
class Unbind(PDU):
    """``unbind``."""

    command_id = CommandId.UNBIND


@attrs.frozen(kw_only=True)
class UnbindResp(PDU):
    """``unbind_resp``."""

    command_id = CommandId.UNBIND_RESP


@attrs.frozen(kw_only=True)
class EnquireLink(PDU):
    """``enquire_link``: a keep-alive."""

    command_id = CommandId.ENQUIRE_LINK


@attrs.frozen(kw_only=True)
class EnquireLinkResp(PDU):
    """``enquire_link_resp``."""

    command_id = CommandId.ENQUIRE_LINK_RESP


_SM_BODY: Final = (
    _cstr("service_type", 6),
    _int1("source_addr_ton"),
    _int1("source_addr_npi"),
    _cstr("source_addr", 21),
    _int1("dest_addr_ton"),
    _int1("dest_addr_npi"),
    _cstr("destination_addr", 21),
    _int1("esm_class"),
    _int1("protocol_id"),
    _int1("priority_flag"),
    _cstr("schedule_delivery_time", 17),
    _cstr("validity_period", 17),
    _int1("registered_delivery"),
    _int1("replace_if_present_flag"),
    _int1("data_coding"),
    _int1("sm_default_msg_id"),
    _SHORT_MESSAGE,
)


@attrs.frozen(kw_only=True)
class _ShortMessage(PDU):
    body = _SM_BODY

    service_type: str = ""
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    source_addr: str = ""
    dest_addr_ton: int = 0
    dest_addr_npi: int = 0
    destination_addr: str = ""
    esm_class: int = 0
    protocol_id: int = 0
    priority_flag: int = 0
    schedule_delivery_time: str = ""
    validity_period: str = ""
    registered_delivery: int = 0
    replace_if_present_flag: int = 0
    data_coding: int = 0
    sm_default_msg_id: int = 0
    short_message: bytes = b""


@attrs.frozen(kw_only=True)
class SubmitSM(_ShortMessage):
    """``submit_sm``: an MT message (``sm_length`` follows ``short_message``)."""

    command_id = CommandId.SUBMIT_SM


@attrs.frozen(kw_only=True)
class DeliverSM(_ShortMessage):
    """``deliver_sm``: an MO message or a delivery receipt."""

    command_id = CommandId.DELIVER_SM


@attrs.frozen(kw_only=True)
class _MessageIdResp(PDU):
    body = (_cstr("message_id", 65),)

    message_id: str = ""


@attrs.frozen(kw_only=True)
class SubmitSMResp(_MessageIdResp):
    """``submit_sm_resp``: ``message_id`` is the SMSC's id for the message."""

    command_id = CommandId.SUBMIT_SM_RESP


@attrs.frozen(kw_only=True)
class DeliverSMResp(_MessageIdResp):
    """``deliver_sm_resp``: ``message_id`` is unused and left empty."""

    command_id = CommandId.DELIVER_SM_RESP


@attrs.frozen(kw_only=True)
class DataSM(PDU):
    """``data_sm``: a message whose content travels in ``message_payload``."""

    command_id = CommandId.DATA_SM
    body = (
        _cstr("service_type", 6),
        _int1("source_addr_ton"),
        _int1("source_addr_npi"),
        _cstr("source_addr", 65),
        _int1("dest_addr_ton"),
        _int1("dest_addr_npi"),
        _cstr("destination_addr", 65),
        _int1("esm_class"),
        _int1("registered_delivery"),
        _int1("data_coding"),
    )

    service_type: str = ""
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    source_addr: str = ""
    dest_addr_ton: int = 0
    dest_addr_npi: int = 0
    destination_addr: str = ""
    esm_class: int = 0
    registered_delivery: int = 0
    data_coding: int = 0


@attrs.frozen(kw_only=True)
class DataSMResp(_MessageIdResp):
    """``data_sm_resp``."""

    command_id = CommandId.DATA_SM_RESP


@attrs.frozen(kw_only=True)
class QuerySM(PDU):
    """``query_sm``: ask the SMSC for a message's state."""

    command_id = CommandId.QUERY_SM
    body = (
        _cstr("message_id", 65),
        _int1("source_addr_ton"),
        _int1("source_addr_npi"),
        _cstr("source_addr", 21),
    )

    message_id: str = ""
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    source_addr: str = ""


@attrs.frozen(kw_only=True)
class QuerySMResp(PDU):
    """``query_sm_resp``."""

    command_id = CommandId.QUERY_SM_RESP
    body = (
        _cstr("message_id", 65),
        _cstr("final_date", 17),
        _int1("message_state"),
        _int1("error_code"),
    )

    message_id: str = ""
    final_date: str = ""
    message_state: int = 0
    error_code: int = 0


@attrs.frozen(kw_only=True)
class CancelSM(PDU):
    """``cancel_sm``."""

    command_id = CommandId.CANCEL_SM
    body = (
        _cstr("service_type", 6),
        _cstr("message_id", 65),
        _int1("source_addr_ton"),
        _int1("source_addr_npi"),
        _cstr("source_addr", 21),
        _int1("dest_addr_ton"),
        _int1("dest_addr_npi"),
        _cstr("destination_addr", 21),
    )

    service_type: str = ""
    message_id: str = ""
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    source_addr: str = ""
    dest_addr_ton: int = 0
    dest_addr_npi: int = 0
    destination_addr: str = ""


@attrs.frozen(kw_only=True)
class CancelSMResp(PDU):
    """``cancel_sm_resp``."""

    command_id = CommandId.CANCEL_SM_RESP


@attrs.frozen(kw_only=True)
class ReplaceSM(PDU):
    """``replace_sm``."""

    command_id = CommandId.REPLACE_SM
    body = (
        _cstr("message_id", 65),
        _int1("source_addr_ton"),
        _int1("source_addr_npi"),
        _cstr("source_addr", 21),
        _cstr("schedule_delivery_time", 17),
        _cstr("validity_period", 17),
        _int1("registered_delivery"),
        _int1("sm_default_msg_id"),
        _SHORT_MESSAGE,
    )

    message_id: str = ""
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    source_addr: str = ""
    schedule_delivery_time: str = ""
    validity_period: str = ""
    registered_delivery: int = 0
    sm_default_msg_id: int = 0
    short_message: bytes = b""


@attrs.frozen(kw_only=True)
class ReplaceSMResp(PDU):
    """``replace_sm_resp``."""

    command_id = CommandId.REPLACE_SM_RESP


@attrs.frozen(kw_only=True)
class AlertNotification(PDU):
    """``alert_notification``: a subscriber became available (no response)."""

    command_id = CommandId.ALERT_NOTIFICATION
    body = (
        _int1("source_addr_ton"),
        _int1("source_addr_npi"),
        _cstr("source_addr", 65),
        _int1("esme_addr_ton"),
        _int1("esme_addr_npi"),
        _cstr("esme_addr", 65),
    )

    source_addr_ton: int = 0
    source_addr_npi: int = 0
    source_addr: str = ""
    esme_addr_ton: int = 0
    esme_addr_npi: int = 0
    esme_addr: str = ""


#: Every PDU class by command id.  ``submit_multi`` is not modelled: decoding
#: it fails with ``ESME_RINVCMDID``, as an ESME does not accept it.
PDU_CLASSES: Final[Mapping[int, type[PDU]]] = {
    cls.command_id: cls
    for cls in (
        GenericNack,
        BindTransmitter,
        BindTransmitterResp,
        BindReceiver,
        BindReceiverResp,
        BindTransceiver,
        BindTransceiverResp,
        Outbind,
        Unbind,
        UnbindResp,
        EnquireLink,
        EnquireLinkResp,
        SubmitSM,
        SubmitSMResp,
        DeliverSM,
        DeliverSMResp,
        DataSM,
        DataSMResp,
        QuerySM,
        QuerySMResp,
        CancelSM,
        CancelSMResp,
        ReplaceSM,
        ReplaceSMResp,
        AlertNotification,
    )
}


# --------------------------------------------------------------------------
# Encoding


def _encode_cstring(name: str, value: object, max_length: int) -> bytes:
    if not isinstance(value, str):
        raise PDUEncodeError(f"{name} must be a str, not {type(value).__name__}")
    try:
        raw = value.encode("latin-1")
    except UnicodeEncodeError as e:
        raise PDUEncodeError(f"{name} must be Latin-1 text: {value!r}") from e
    if b"\x00" in raw:
        raise PDUEncodeError(f"{name} must not contain NUL: {value!r}")
    if len(raw) >= max_length:
        raise PDUEncodeError(
            f"{name} is {len(raw)} octets; the maximum is {max_length - 1}"
        )
    return raw + b"\x00"


def _encode_int(name: str, value: object, size: int) -> bytes:
    if not isinstance(value, int) or isinstance(value, bool):
        raise PDUEncodeError(f"{name} must be an int, not {type(value).__name__}")
    if not 0 <= value < 1 << (8 * size):
        raise PDUEncodeError(f"{name} does not fit in {size} octets: {value}")
    return value.to_bytes(size, "big")


def encode_tlv(tag: int, value: TLVValue) -> bytes:
    """Encode one optional parameter (tag, length, value)."""
    name = _tag_name(tag)
    if tag in _TLV_INT_SIZES:
        raw = _encode_int(name, value, _TLV_INT_SIZES[tag])
    elif tag in _TLV_CSTRING_MAX:
        raw = _encode_cstring(name, value, _TLV_CSTRING_MAX[tag])
    elif isinstance(value, bytes | bytearray):
        raw = bytes(value)
    else:
        raise PDUEncodeError(f"{name} must be bytes, not {type(value).__name__}")
    if not 0 <= tag <= 0xFFFF:
        raise PDUEncodeError(f"TLV tag out of range: {tag}")
    if len(raw) > 0xFFFF:
        raise PDUEncodeError(f"{name} is {len(raw)} octets; the maximum is 65535")
    return _TLV_HEADER.pack(tag, len(raw)) + raw


def _tag_name(tag: int) -> str:
    try:
        return Tag(tag).name.lower()
    except ValueError:
        return f"TLV 0x{tag:04X}"


# The body of each PDU class as (name, kind, size or maximum length) with
# plain-int kinds, built once per class: the encoding loop below runs for
# every PDU sent, and Enum attribute lookups were most of its cost.
_PLAN_INT: Final = 0
_PLAN_CSTRING: Final = 1
_PLAN_SHORT_MESSAGE: Final = 2
_OCTETS: Final = tuple(bytes((n,)) for n in range(256))
_plans: dict[type[PDU], tuple[tuple[str, int, int], ...]] = {}


def _plan(cls: type[PDU]) -> tuple[tuple[str, int, int], ...]:
    plan = _plans.get(cls)
    if plan is None:
        steps = []
        for param in cls.body:
            if param.kind is _Kind.CSTRING:
                steps.append((param.name, _PLAN_CSTRING, param.max_length))
            elif param.kind is _Kind.SHORT_MESSAGE:
                steps.append((param.name, _PLAN_SHORT_MESSAGE, 0))
            else:
                steps.append((param.name, _PLAN_INT, int(param.kind.value)))
        plan = _plans[cls] = tuple(steps)
    return plan


def encode_pdu(pdu: PDU) -> bytes:
    """Encode ``pdu`` as wire bytes; raise :class:`PDUEncodeError` if invalid."""
    parts = [b""]
    append = parts.append
    for name, kind, size in _plan(type(pdu)):
        value = getattr(pdu, name)
        if kind == _PLAN_INT:
            # The common case inline; anything else gets the full checks.
            if type(value) is int and 0 <= value < 256 and size == 1:
                append(_OCTETS[value])
            else:
                append(_encode_int(name, value, size))
        elif kind == _PLAN_CSTRING:
            if (
                type(value) is str
                and value.isascii()
                and len(value) < size
                and "\x00" not in value
            ):
                append(value.encode("ascii"))
                append(b"\x00")
            else:
                append(_encode_cstring(name, value, size))
        else:
            if not isinstance(value, bytes | bytearray):
                raise PDUEncodeError("short_message must be bytes")
            if len(value) > MAX_SHORT_MESSAGE_LENGTH:
                raise PDUEncodeError(
                    f"short_message is {len(value)} octets; the maximum is "
                    f"{MAX_SHORT_MESSAGE_LENGTH} (use message_payload)"
                )
            append(_OCTETS[len(value)])
            append(bytes(value))
    if pdu.tlvs:
        parts.extend(encode_tlv(tag, value) for tag, value in pdu.tlvs.items())
    body = b"".join(parts)
    length = HEADER_LENGTH + len(body)
    for name in ("command_status", "sequence_number"):
        value = getattr(pdu, name)
        if type(value) is not int or not 0 <= value <= 0xFFFFFFFF:
            _encode_int(name, value, 4)
    header = _HEADER.pack(
        length, pdu.command_id, pdu.command_status, pdu.sequence_number
    )
    return header + body


# --------------------------------------------------------------------------
# Decoding


class _Reader:
    """Reads mandatory parameters from a body, raising :class:`_BodyError`."""

    def __init__(self, data: bytes, position: int) -> None:
        self.data = data
        self.position = position

    @property
    def remaining(self) -> int:
        return len(self.data) - self.position

    def integer(self, name: str, size: int) -> int:
        end = self.position + size
        if end > len(self.data):
            raise _BodyError(f"body ends before {name}", CommandStatus.ESME_RINVCMDLEN)
        value = int.from_bytes(self.data[self.position : end], "big")
        self.position = end
        return value

    def cstring(self, name: str, max_length: int) -> str:
        end = self.data.find(b"\x00", self.position)
        if end < 0:
            raise _BodyError(
                f"{name} is not NUL-terminated before the body ends",
                CommandStatus.ESME_RINVCMDLEN,
            )
        if end - self.position >= max_length:
            raise _BodyError(
                f"{name} is {end - self.position} octets; the maximum is "
                f"{max_length - 1}",
                CommandStatus.ESME_RINVPARLEN,
            )
        value = self.data[self.position : end].decode("latin-1")
        self.position = end + 1
        return value

    def short_message(self) -> bytes:
        length = self.integer("sm_length", 1)
        if length > MAX_SHORT_MESSAGE_LENGTH:
            raise _BodyError(
                f"sm_length {length} exceeds {MAX_SHORT_MESSAGE_LENGTH}",
                CommandStatus.ESME_RINVMSGLEN,
            )
        if length > self.remaining:
            raise _BodyError(
                f"sm_length {length} exceeds the {self.remaining} octets left",
                CommandStatus.ESME_RINVMSGLEN,
            )
        value = self.data[self.position : self.position + length]
        self.position += length
        return value

    def tlvs(self) -> dict[int, TLVValue]:
        tlvs: dict[int, TLVValue] = {}
        while self.remaining:
            if self.remaining < _TLV_HEADER.size:
                raise _BodyError(
                    f"{self.remaining} stray octets after the last TLV",
                    CommandStatus.ESME_RINVOPTPARSTREAM,
                )
            tag, length = _TLV_HEADER.unpack_from(self.data, self.position)
            start = self.position + _TLV_HEADER.size
            if start + length > len(self.data):
                raise _BodyError(
                    f"{_tag_name(tag)} length {length} runs past the body",
                    CommandStatus.ESME_RINVOPTPARSTREAM,
                )
            tlvs[tag] = _decode_tlv_value(tag, self.data[start : start + length])
            self.position = start + length
        return tlvs


def _decode_tlv_value(tag: int, raw: bytes) -> TLVValue:
    size = _TLV_INT_SIZES.get(tag)
    if size is not None:
        if len(raw) != size:
            raise _BodyError(
                f"{_tag_name(tag)} is {len(raw)} octets; it must be {size}",
                CommandStatus.ESME_RINVPARLEN,
            )
        return int.from_bytes(raw, "big")
    max_length = _TLV_CSTRING_MAX.get(tag)
    if max_length is not None:
        # Some SMSCs leave out the NUL; accept that, and stop at the first NUL.
        text = raw.split(b"\x00", 1)[0]
        if len(text) >= max_length:
            raise _BodyError(
                f"{_tag_name(tag)} is {len(text)} octets; the maximum is "
                f"{max_length - 1}",
                CommandStatus.ESME_RINVPARLEN,
            )
        return text.decode("latin-1")
    return raw


def decode_header(data: bytes) -> tuple[int, int, int, int]:
    """``(command_length, command_id, command_status, sequence_number)``."""
    if len(data) < HEADER_LENGTH:
        raise PDUDecodeError(
            f"{len(data)} octets cannot hold a PDU header",
            command_status=CommandStatus.ESME_RINVCMDLEN,
        )
    length, command_id, status, sequence = _HEADER.unpack_from(data)
    return length, command_id, status, sequence


def decode_pdu(data: bytes) -> PDU:
    """Decode exactly one PDU; raise :class:`PDUDecodeError` if invalid."""
    length, command_id, status, sequence = decode_header(data)
    if length != len(data):
        raise PDUDecodeError(
            f"command_length {length} but the PDU is {len(data)} octets",
            command_status=CommandStatus.ESME_RINVCMDLEN,
            command_id=command_id,
            sequence_number=sequence,
        )
    cls = PDU_CLASSES.get(command_id)
    if cls is None:
        raise PDUDecodeError(
            f"unknown command_id 0x{command_id:08X}",
            command_status=CommandStatus.ESME_RINVCMDID,
            command_id=command_id,
            sequence_number=sequence,
        )
    try:
        fields = _decode_body(cls, bytes(data), status)
    except _BodyError as e:
        raise PDUDecodeError(
            f"{cls.command_id.name.lower()}: {e.message}",
            command_status=e.command_status,
            command_id=command_id,
            sequence_number=sequence,
        ) from None
    return cls(sequence_number=sequence, command_status=status, **fields)


def _decode_body(cls: type[PDU], data: bytes, status: int) -> dict[str, Any]:
    reader = _Reader(data, HEADER_LENGTH)
    fields: dict[str, Any] = {}
    # A response with an error status may come without its body (SMPP 3.4
    # says so for submit_sm_resp; SMSCs do it for bind responses too).
    if cls.body and not (reader.remaining == 0 and status != 0 and _is_resp(cls)):
        for param in cls.body:
            if param.kind is _Kind.CSTRING:
                fields[param.name] = reader.cstring(param.name, param.max_length)
            elif param.kind is _Kind.SHORT_MESSAGE:
                fields[param.name] = reader.short_message()
            else:
                fields[param.name] = reader.integer(param.name, param.kind.value)
    fields["tlvs"] = reader.tlvs()
    return fields


def _is_resp(cls: type[PDU]) -> bool:
    return bool(cls.command_id & _RESPONSE_BIT)


# --------------------------------------------------------------------------
# Framing


class PDUFramer:
    """Cut PDUs out of a byte stream.

    ``feed(data)`` buffers ``data`` at once and returns an iterator over the
    PDUs now complete.  If one PDU is malformed, iterating raises
    :class:`PDUDecodeError` *after* consuming that PDU's octets: the caller
    can answer it and keep going by calling :meth:`pdus` for the rest.  A
    ``command_length`` below 16 or above ``max_length`` raises
    :class:`FramingError` instead (once the 16-octet header has arrived, so
    that it carries the ``sequence_number``); the stream is then unusable
    and every later call raises the same error.
    """

    def __init__(self, max_length: int = MAX_COMMAND_LENGTH) -> None:
        self.max_length = max_length
        self._buffer = bytearray()
        self._start = 0
        self._error: FramingError | None = None

    @property
    def buffered(self) -> int:
        """How many octets are waiting for the rest of their PDU."""
        return len(self._buffer) - self._start

    def feed(self, data: bytes) -> Iterator[PDU]:
        """Buffer ``data``; return an iterator over the complete PDUs."""
        self._buffer += data
        return self.pdus()

    def pdus(self) -> Iterator[PDU]:
        """Yield the complete PDUs buffered so far."""
        while (frame := self.next_frame()) is not None:
            yield decode_pdu(frame)

    def next_frame(self) -> bytes | None:
        """Remove and return the next complete PDU's octets, if there is one."""
        if self._error is not None:
            raise self._error
        start = self._start
        if len(self._buffer) - start < HEADER_LENGTH:
            return None
        length, command_id, _, sequence = _HEADER.unpack_from(self._buffer, start)
        if length < HEADER_LENGTH or length > self.max_length:
            self._error = FramingError(
                f"command_length {length} is outside {HEADER_LENGTH}.."
                f"{self.max_length}",
                command_status=CommandStatus.ESME_RINVCMDLEN,
                command_id=command_id,
                sequence_number=sequence,
            )
            raise self._error
        end = start + length
        if len(self._buffer) < end:
            return None
        frame = bytes(self._buffer[start:end])
        if end == len(self._buffer):
            self._buffer.clear()
            self._start = 0
        elif end > 0x10000:
            del self._buffer[:end]
            self._start = 0
        else:
            self._start = end
        return frame
