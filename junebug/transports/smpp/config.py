"""The config of the ``smpp`` channel type.

Every option vumi's SMPP transport understood is accepted under its vumi name
(research notes, ``transports.md`` section 1.2), so an existing Junebug channel
config keeps working; options that only made sense for vumi's Redis-heavy
design are accepted and documented as having no effect.  Options vumi lacked
(window, response timeout, id bases, multipart method, USSD codes...) are
added beside them.

vumi nested its message-processing options in three dicts
(``submit_short_message_processor_config``, ``deliver_short_message_processor_config``
and ``delivery_report_processor_config``).  They are accepted as they were; a
key given there wins over the flat option of the same meaning.

Connection and session
    ``twisted_endpoint`` (a Twisted client endpoint description such as
    ``tcp:host=smsc:port=2775``) or the legacy ``host`` + ``port``;
    ``system_id``, ``password`` (SMPP 3.4 allows 8 characters: a longer one is
    cut, as vumi did), ``system_type``, ``interface_version`` (``"34"``),
    ``bind_type`` (``transceiver``, ``transmitter`` or ``receiver``),
    ``address_range``, ``addr_ton``/``addr_npi`` (of the bind);
    ``smpp_bind_timeout``, ``smpp_enquire_link_interval``,
    ``smpp_response_timeout`` (a request unanswered this long means the link
    is dead: it is dropped and rebound), ``smpp_unbind_timeout``;
    ``initial_reconnect_delay``, ``max_reconnect_delay`` and
    ``reconnect_backoff_factor`` (the delay grows from the first to the cap
    while binds keep failing, and starts again after a successful bind).

MT
    ``window_size`` (outstanding ``submit_sm``), ``mt_tps`` (``submit_sm``
    PDUs per second, 0 for no limit), ``throttle_delay`` and
    ``max_throttle_delay`` (the wait after ``ESME_RTHROTTLED`` or
    ``ESME_RMSGQFUL``, doubling while the SMSC keeps refusing),
    ``submit_timeout`` (how long an MT waits for a bound session before it
    goes back to the queue; ``null`` waits for ever); ``service_type``,
    ``source_addr_ton``/``source_addr_npi``, ``dest_addr_ton``/``dest_addr_npi``,
    ``registered_delivery``; ``data_coding_preference`` (the ``data_coding``
    values tried in order for each message; the first that carries the text
    unchanged is used, UCS-2 otherwise), ``data_coding_overrides`` (codec
    names by ``data_coding``, for MT and MO), ``mt_data_coding_overrides``,
    ``mo_data_coding_overrides``; ``multipart_handling`` (``multipart_udh``,
    ``multipart_sar``, ``message_payload`` or ``short_message``),
    ``udh_reference_bits`` (8 or 16), ``send_long_messages`` (vumi: every
    message in ``message_payload``), ``multipart_sar_reference_rollover``;
    ``disable_ack``.

MO and delivery reports
    ``allow_empty_messages``, ``deliver_sm_decoding_error`` (the status
    answering an MO that cannot be decoded), ``multipart_reassembly_ttl``;
    ``delivery_report_use_esm_class``, ``delivery_report_status_mapping``,
    ``delivery_report_regex`` (a fallback for receipts the built-in parser
    does not read; named groups ``id`` and ``stat``);
    ``submit_sm_resp_id_base`` and ``delivery_report_id_base`` (``verbatim``,
    ``hex`` or ``decimal``: how the SMSC writes ids on each side);
    ``third_party_id_expiry`` and ``final_dr_third_party_id_expiry`` (TTLs of
    the SMSC id -> message id map); ``split_bind_prefix`` (share that map
    between a transmitter and a receiver channel); ``disable_delivery_report``.

USSD
    ``ussd_session_events`` (``ussd_service_op`` in hex -> session event),
    ``ussd_reply_service_op`` and ``ussd_close_service_op`` (for MT replies).

Accepted, no effect: ``submit_sm_expiry`` and ``completed_multipart_info_expiry``
(MT state lives with the unacknowledged AMQP message, not in Redis),
``redis_manager`` (the channel's store is used), ``codec_class``,
``max_session_length`` and the ``*_processor`` class paths.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final, cast

import attrs
from twisted.internet.endpoints import clientFromString

from junebug.errors import ConfigError
from junebug.messages import SESSION_CLOSE, SESSION_NEW, SESSION_RESUME
from junebug.redaction import MASKED, SECRET
from junebug.transports.smpp.codec import DataCodings, MultipartMethod
from junebug.transports.smpp.constants import CommandStatus
from junebug.transports.smpp.pdu import (
    BindReceiver,
    BindTransceiver,
    BindTransmitter,
)
from junebug.transports.smpp.reports import DeliveryStatus, IdBase

__all__ = [
    "BIND_CLASSES",
    "DeliverShortMessageProcessorConfig",
    "DeliveryReportProcessorConfig",
    "SmppConfig",
    "SubmitShortMessageProcessorConfig",
]

#: A bind PDU class.
BindClass = type[BindTransceiver | BindTransmitter | BindReceiver]

#: ``bind_type`` values (vumi's TRX/TX/RX are accepted too).
BIND_CLASSES: Final[Mapping[str, BindClass]] = {
    "transceiver": BindTransceiver,
    "trx": BindTransceiver,
    "transmitter": BindTransmitter,
    "tx": BindTransmitter,
    "receiver": BindReceiver,
    "rx": BindReceiver,
}

#: The longest password SMPP 3.4 carries (9 octets with the NUL).
MAX_PASSWORD_LENGTH: Final = 8

DEFAULT_USSD_SESSION_EVENTS: Final[Mapping[str, str]] = {
    "01": SESSION_NEW,  # PSSR indication
    "02": SESSION_RESUME,  # USSR request
    "12": SESSION_RESUME,  # USSR confirm
    "11": SESSION_CLOSE,  # PSSR response
}

_SESSION_EVENTS: Final = (SESSION_NEW, SESSION_RESUME, SESSION_CLOSE)
_HEX_OCTET: Final = re.compile(r"[0-9A-Fa-f]{1,2}")


# --------------------------------------------------------------------------
# Field validators: each raises ConfigError naming the field.


def _positive(inst: object, attr: attrs.Attribute[Any], value: float) -> None:
    if value <= 0:
        raise ConfigError(f"{attr.name}: must be greater than 0, not {value}")


def _not_negative(inst: object, attr: attrs.Attribute[Any], value: float) -> None:
    if value < 0:
        raise ConfigError(f"{attr.name}: must not be negative, not {value}")


def _optional_positive(
    inst: object, attr: attrs.Attribute[Any], value: float | None
) -> None:
    if value is not None:
        _positive(inst, attr, value)


def _octet(inst: object, attr: attrs.Attribute[Any], value: int) -> None:
    if not 0 <= value <= 0xFF:
        raise ConfigError(f"{attr.name}: must be 0..255, not {value}")


def _max_length(length: int) -> Any:
    def check(inst: object, attr: attrs.Attribute[Any], value: str) -> None:
        try:
            raw = value.encode("latin-1")
        except UnicodeEncodeError:
            raise ConfigError(f"{attr.name}: must be Latin-1 text") from None
        if len(raw) > length:
            raise ConfigError(
                f"{attr.name}: at most {length} characters, not {len(raw)}"
            )
        if "\x00" in value:
            raise ConfigError(f"{attr.name}: must not contain NUL")

    return check


def _one_of(*choices: str) -> Any:
    def check(inst: object, attr: attrs.Attribute[Any], value: str) -> None:
        if value not in choices:
            raise ConfigError(
                f"{attr.name}: must be one of {', '.join(choices)}, not {value!r}"
            )

    return check


def _hex_octet(inst: object, attr: attrs.Attribute[Any], value: str) -> None:
    if not _HEX_OCTET.fullmatch(value):
        raise ConfigError(f"{attr.name}: must be a hex octet such as '02'")


def _codec_overrides(
    inst: object, attr: attrs.Attribute[Any], value: Mapping[str, str]
) -> None:
    try:
        DataCodings(cast(Mapping[int | str, str], value))
    except (LookupError, ValueError) as exc:
        raise ConfigError(f"{attr.name}: {exc}") from None


def _status_mapping(
    inst: object, attr: attrs.Attribute[Any], value: Mapping[str, str]
) -> None:
    allowed = {status.value for status in DeliveryStatus}
    for state, status in value.items():
        if status not in allowed:
            raise ConfigError(
                f"{attr.name}: {state!r} maps to {status!r}; use one of "
                + ", ".join(sorted(allowed))
            )


def _regex(inst: object, attr: attrs.Attribute[Any], value: str | None) -> None:
    if value is None:
        return
    try:
        pattern = re.compile(value)
    except re.error as exc:
        raise ConfigError(f"{attr.name}: not a regular expression: {exc}") from None
    if not {"id", "stat"} <= set(pattern.groupindex):
        raise ConfigError(f"{attr.name}: needs the named groups 'id' and 'stat'")


# --------------------------------------------------------------------------
# vumi's nested processor configs


@attrs.frozen
class SubmitShortMessageProcessorConfig:
    """vumi's ``submit_short_message_processor_config`` (MT encoding)."""

    #: A codec name for ``submit_sm_data_coding``; with it the pair is the
    #: first preference (a text that codec cannot carry still goes as UCS-2).
    submit_sm_encoding: str | None = None
    submit_sm_data_coding: int | None = attrs.field(default=None)
    send_long_messages: bool | None = None
    send_multipart_sar: bool | None = None
    send_multipart_udh: bool | None = None
    multipart_sar_reference_rollover: int | None = None

    @submit_sm_data_coding.validator
    def _check_data_coding(self, attr: attrs.Attribute[Any], value: int | None) -> None:
        if value is not None and not 0 <= value <= 0xFF:
            raise ConfigError(
                f"submit_short_message_processor_config.{attr.name}: must be "
                f"0..255, not {value}"
            )


@attrs.frozen
class DeliverShortMessageProcessorConfig:
    """vumi's ``deliver_short_message_processor_config`` (MO decoding)."""

    data_coding_overrides: dict[str, str] = attrs.field(
        factory=dict, validator=_codec_overrides
    )
    allow_empty_messages: bool | None = None


@attrs.frozen
class DeliveryReportProcessorConfig:
    """vumi's ``delivery_report_processor_config``."""

    delivery_report_regex: str | None = attrs.field(default=None, validator=_regex)
    delivery_report_status_mapping: dict[str, str] = attrs.field(
        factory=dict, validator=_status_mapping
    )
    delivery_report_use_esm_class: bool | None = None


# --------------------------------------------------------------------------
# The channel config


def _ussd_events(
    inst: object, attr: attrs.Attribute[Any], value: Mapping[str, str]
) -> None:
    for op, event in value.items():
        if not _HEX_OCTET.fullmatch(op):
            raise ConfigError(f"{attr.name}: {op!r} is not a hex octet")
        if event not in _SESSION_EVENTS:
            raise ConfigError(
                f"{attr.name}: {op!r} maps to {event!r}; use one of "
                + ", ".join(_SESSION_EVENTS)
            )


def _data_coding_list(
    inst: object, attr: attrs.Attribute[Any], value: list[int]
) -> None:
    for data_coding in value:
        if not 0 <= data_coding <= 0xFF:
            raise ConfigError(f"{attr.name}: {data_coding} is not 0..255")


@attrs.frozen
class SmppConfig:
    """Every option of an ``smpp`` channel; see the module docs."""

    system_id: str = attrs.field(validator=_max_length(15))
    password: str = attrs.field(validator=_max_length(64), metadata=SECRET, repr=MASKED)

    # -- connection and session -------------------------------------------
    twisted_endpoint: str | None = None
    host: str | None = None
    port: int | None = None
    system_type: str = attrs.field(default="", validator=_max_length(12))
    interface_version: str = "34"
    bind_type: str = attrs.field(
        default="transceiver", validator=_one_of(*BIND_CLASSES)
    )
    address_range: str = attrs.field(default="", validator=_max_length(40))
    addr_ton: int = attrs.field(default=0, validator=_octet)
    addr_npi: int = attrs.field(default=0, validator=_octet)
    smpp_bind_timeout: float = attrs.field(default=30.0, validator=_positive)
    smpp_enquire_link_interval: float = attrs.field(default=55.0, validator=_positive)
    smpp_response_timeout: float = attrs.field(default=60.0, validator=_positive)
    smpp_unbind_timeout: float = attrs.field(default=2.0, validator=_positive)
    initial_reconnect_delay: float = attrs.field(default=5.0, validator=_positive)
    max_reconnect_delay: float = attrs.field(default=60.0, validator=_positive)
    reconnect_backoff_factor: float = attrs.field(default=2.0, validator=_positive)

    # -- MT pacing ----------------------------------------------------------
    window_size: int = attrs.field(default=10, validator=_positive)
    mt_tps: float = attrs.field(default=0.0, validator=_not_negative)
    throttle_delay: float = attrs.field(default=0.1, validator=_positive)
    max_throttle_delay: float = attrs.field(default=5.0, validator=_positive)
    submit_timeout: float | None = attrs.field(
        default=60.0, validator=_optional_positive
    )

    # -- MT fields and encoding --------------------------------------------
    service_type: str = attrs.field(default="", validator=_max_length(5))
    source_addr_ton: int = attrs.field(default=0, validator=_octet)
    source_addr_npi: int = attrs.field(default=0, validator=_octet)
    dest_addr_ton: int = attrs.field(default=0, validator=_octet)
    dest_addr_npi: int = attrs.field(default=1, validator=_octet)
    registered_delivery: bool = True
    data_coding_preference: list[int] = attrs.field(
        factory=lambda: [0], validator=_data_coding_list
    )
    data_coding_overrides: dict[str, str] = attrs.field(
        factory=dict, validator=_codec_overrides
    )
    mt_data_coding_overrides: dict[str, str] = attrs.field(
        factory=dict, validator=_codec_overrides
    )
    mo_data_coding_overrides: dict[str, str] = attrs.field(
        factory=dict, validator=_codec_overrides
    )
    multipart_handling: str = attrs.field(
        default=MultipartMethod.UDH.value,
        validator=_one_of(*(method.value for method in MultipartMethod)),
    )
    udh_reference_bits: int = 8
    send_long_messages: bool = False
    multipart_sar_reference_rollover: int = attrs.field(
        default=0x10000, validator=_positive
    )
    disable_ack: bool = False

    # -- MO and delivery reports -------------------------------------------
    allow_empty_messages: bool = False
    deliver_sm_decoding_error: str = "ESME_RDELIVERYFAILURE"
    multipart_reassembly_ttl: float = attrs.field(default=600.0, validator=_positive)
    delivery_report_use_esm_class: bool = True
    delivery_report_status_mapping: dict[str, str] = attrs.field(
        factory=dict, validator=_status_mapping
    )
    delivery_report_regex: str | None = attrs.field(default=None, validator=_regex)
    submit_sm_resp_id_base: str = attrs.field(
        default=IdBase.VERBATIM.value, validator=_one_of(*IdBase)
    )
    delivery_report_id_base: str = attrs.field(
        default=IdBase.VERBATIM.value, validator=_one_of(*IdBase)
    )
    third_party_id_expiry: int = attrs.field(default=604800, validator=_positive)
    final_dr_third_party_id_expiry: int = attrs.field(default=3600, validator=_positive)
    split_bind_prefix: str = ""
    disable_delivery_report: bool = False

    # -- USSD ---------------------------------------------------------------
    ussd_session_events: dict[str, str] = attrs.field(
        factory=lambda: dict(DEFAULT_USSD_SESSION_EVENTS), validator=_ussd_events
    )
    ussd_reply_service_op: str = attrs.field(default="02", validator=_hex_octet)
    ussd_close_service_op: str = attrs.field(default="02", validator=_hex_octet)

    # -- vumi's nested processor configs ------------------------------------
    submit_short_message_processor_config: SubmitShortMessageProcessorConfig = (
        attrs.field(factory=SubmitShortMessageProcessorConfig)
    )
    deliver_short_message_processor_config: DeliverShortMessageProcessorConfig = (
        attrs.field(factory=DeliverShortMessageProcessorConfig)
    )
    delivery_report_processor_config: DeliveryReportProcessorConfig = attrs.field(
        factory=DeliveryReportProcessorConfig
    )

    # -- accepted for compatibility; no effect ------------------------------
    submit_sm_expiry: int = 86400
    completed_multipart_info_expiry: int = 3600
    max_session_length: int = 180

    def __attrs_post_init__(self) -> None:
        self._check_endpoint()
        if self.udh_reference_bits not in (8, 16):
            raise ConfigError(
                f"udh_reference_bits: must be 8 or 16, not {self.udh_reference_bits}"
            )
        try:
            self.interface_version_number  # noqa: B018 - validates
        except ValueError:
            raise ConfigError(
                "interface_version: must be two hex digits such as '34', not "
                f"{self.interface_version!r}"
            ) from None
        if self.deliver_sm_decoding_error not in CommandStatus.__members__:
            raise ConfigError(
                "deliver_sm_decoding_error: not an SMPP command status name: "
                f"{self.deliver_sm_decoding_error!r}"
            )
        submit = self.submit_short_message_processor_config
        names = ("send_long_messages", "send_multipart_sar", "send_multipart_udh")
        flags = [name for name in names if getattr(submit, name)]
        if self.send_long_messages and "send_long_messages" not in flags:
            flags.append("send_long_messages")
        if len(flags) > 1:
            raise ConfigError(
                "submit_short_message_processor_config: "
                + " and ".join(flags)
                + " cannot be combined"
            )
        if self.max_reconnect_delay < self.initial_reconnect_delay:
            raise ConfigError(
                "max_reconnect_delay: must not be less than initial_reconnect_delay"
            )
        try:
            self.mt_data_codings()
            self.mo_data_codings()
        except (LookupError, ValueError) as exc:
            raise ConfigError(
                f"submit_short_message_processor_config.submit_sm_encoding: {exc}"
            ) from None

    def _check_endpoint(self) -> None:
        if self.twisted_endpoint is None:
            if self.host is None or self.port is None:
                raise ConfigError(
                    "twisted_endpoint: a client endpoint such as "
                    "'tcp:host=smsc.example.com:port=2775' is required (or the "
                    "legacy host and port)"
                )
            if not 0 < self.port <= 65535:
                raise ConfigError(f"port: {self.port} is not a TCP port number")
            if not self.host.strip():
                raise ConfigError("host: must not be empty")
            return
        if not self.twisted_endpoint.strip():
            raise ConfigError("twisted_endpoint: must not be empty")
        try:
            # Parsing needs no reactor until connect(); a bad description
            # fails here, when the channel is created.
            clientFromString(cast(Any, None), self.twisted_endpoint)
        except Exception as exc:
            raise ConfigError(
                "twisted_endpoint: not a client endpoint description "
                f"({self.twisted_endpoint!r}): {exc}"
            ) from exc

    # -- derived settings ---------------------------------------------------

    @property
    def endpoint(self) -> str:
        """The client endpoint description to connect to."""
        if self.twisted_endpoint is not None:
            return self.twisted_endpoint
        host = str(self.host).replace("\\", "\\\\").replace(":", "\\:")
        return f"tcp:host={host}:port={self.port}"

    @property
    def bind_class(self) -> BindClass:
        """The bind PDU class of ``bind_type``."""
        return BIND_CLASSES[self.bind_type]

    @property
    def interface_version_number(self) -> int:
        """``interface_version`` as the bind sends it (``"34"`` -> 0x34)."""
        text = self.interface_version.strip().replace(".", "")
        if not re.fullmatch(r"[0-9A-Fa-f]{1,2}", text):
            raise ValueError(text)
        return int(text, 16)

    @property
    def bind_password(self) -> str:
        """``password`` cut to the 8 characters SMPP 3.4 carries."""
        return self.password[:MAX_PASSWORD_LENGTH]

    def _multipart_flag(self, name: str) -> bool:
        nested = getattr(self.submit_short_message_processor_config, name)
        if nested is not None:
            return bool(nested)
        return bool(getattr(self, name, False))

    @property
    def multipart_method(self) -> MultipartMethod:
        """How a long MT is sent, from vumi's flags or ``multipart_handling``."""
        if self._multipart_flag("send_long_messages"):
            return MultipartMethod.MESSAGE_PAYLOAD
        submit = self.submit_short_message_processor_config
        if submit.send_multipart_sar:
            return MultipartMethod.SAR
        method = MultipartMethod(self.multipart_handling)
        if submit.send_multipart_udh:
            method = MultipartMethod.UDH
        if method is MultipartMethod.UDH and self.udh_reference_bits == 16:
            return MultipartMethod.UDH16
        return method

    @property
    def always_payload(self) -> bool:
        """vumi's ``send_long_messages``: every MT in ``message_payload``."""
        return self._multipart_flag("send_long_messages")

    @property
    def sar_reference_rollover(self) -> int:
        nested = self.submit_short_message_processor_config
        if nested.multipart_sar_reference_rollover is not None:
            return max(1, nested.multipart_sar_reference_rollover)
        return self.multipart_sar_reference_rollover

    def mt_data_codings(self) -> DataCodings:
        """The codecs of MT ``data_coding`` values."""
        overrides: dict[int | str, str] = {}
        overrides.update(self.data_coding_overrides)
        overrides.update(self.mt_data_coding_overrides)
        submit = self.submit_short_message_processor_config
        if submit.submit_sm_encoding is not None:
            data_coding = submit.submit_sm_data_coding or 0
            overrides[str(data_coding)] = submit.submit_sm_encoding
        return DataCodings(overrides)

    def mo_data_codings(self) -> DataCodings:
        """The codecs of MO ``data_coding`` values."""
        overrides: dict[int | str, str] = {}
        overrides.update(self.data_coding_overrides)
        overrides.update(self.mo_data_coding_overrides)
        overrides.update(
            self.deliver_short_message_processor_config.data_coding_overrides
        )
        return DataCodings(overrides)

    @property
    def mt_data_coding_preference(self) -> list[int]:
        """The ``data_coding`` values tried, in order, for each MT."""
        submit = self.submit_short_message_processor_config
        if submit.submit_sm_data_coding is not None:
            return [submit.submit_sm_data_coding]
        if submit.submit_sm_encoding is not None:
            return [0]
        return list(self.data_coding_preference)

    @property
    def empty_messages_allowed(self) -> bool:
        nested = self.deliver_short_message_processor_config.allow_empty_messages
        return self.allow_empty_messages if nested is None else nested

    @property
    def receipt_status_mapping(self) -> dict[str, str]:
        mapping = dict(self.delivery_report_status_mapping)
        mapping.update(
            self.delivery_report_processor_config.delivery_report_status_mapping
        )
        return mapping

    @property
    def receipt_regex(self) -> str | None:
        nested = self.delivery_report_processor_config.delivery_report_regex
        return nested if nested is not None else self.delivery_report_regex

    @property
    def receipts_use_esm_class(self) -> bool:
        nested = self.delivery_report_processor_config.delivery_report_use_esm_class
        return self.delivery_report_use_esm_class if nested is None else nested

    @property
    def decoding_error_status(self) -> int:
        return int(CommandStatus[self.deliver_sm_decoding_error])
