"""An MT vumi message turned into the ``submit_sm`` of each of its parts.

:class:`SubmitEncoder` checks the addresses (ASCII, at most 20 characters, as
``submit_sm`` carries them), picks the ``data_coding`` (the first of the
channel's preferences that carries the text unchanged, else UCS-2), splits the
text on character boundaries with the configured multipart method and adds
the USSD TLVs of a USSD reply.  A message that can never be sent raises
:class:`Rejected`, whose reason becomes the ``nack_reason``.

The result is one dict of ``submit_sm`` fields per part, without a sequence
number: each attempt to send a part takes a new one.
"""

from __future__ import annotations

import random
from typing import Any, Final

from junebug.messages import SESSION_CLOSE, UserMessage
from junebug.transports.smpp.codec import (
    MultipartMethod,
    SplitError,
    choose_encoding,
    encode_parts,
    split_message,
)
from junebug.transports.smpp.config import SmppConfig
from junebug.transports.smpp.pdu import Tag

__all__ = ["MAX_ADDRESS_LENGTH", "Rejected", "SubmitEncoder"]

#: The longest ``source_addr``/``destination_addr`` of a ``submit_sm``.
MAX_ADDRESS_LENGTH: Final = 20


class Rejected(Exception):
    """An MT that can never be sent as it is; ``reason`` is the nack reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SubmitEncoder:
    """Builds the ``submit_sm`` fields of MT messages for one channel."""

    def __init__(self, config: SmppConfig) -> None:
        self._config = config
        self._codings = config.mt_data_codings()
        self._preference = config.mt_data_coding_preference
        self._method = config.multipart_method
        self._always_payload = config.always_payload
        self._registered_delivery = 1 if config.registered_delivery else 0
        self._reference = random.randrange(0x10000)

    def templates(self, message: UserMessage) -> list[dict[str, Any]]:
        """The ``submit_sm`` fields of each part; raises :class:`Rejected`."""
        to_addr = _address(message, "to_addr", required=True)
        from_addr = _address(message, "from_addr", required=False)
        content = message.get("content")
        if content is None:
            content = ""
        if not isinstance(content, str):
            raise Rejected("Invalid content: not text")
        data_coding = choose_encoding(content, self._preference, self._codings)
        try:
            segments = split_message(content, data_coding, self._method, self._codings)
        except SplitError as exc:
            raise Rejected(f"Message too long: {exc}") from None
        except (UnicodeError, LookupError) as exc:
            raise Rejected(f"Cannot encode content: {exc}") from None
        parts = encode_parts(
            segments,
            self._method,
            self._next_reference(),
            always_payload=self._always_payload,
        )
        extra_tlvs = self._ussd_tlvs(message)
        config = self._config
        return [
            {
                "service_type": config.service_type,
                "source_addr_ton": config.source_addr_ton,
                "source_addr_npi": config.source_addr_npi,
                "source_addr": from_addr,
                "dest_addr_ton": config.dest_addr_ton,
                "dest_addr_npi": config.dest_addr_npi,
                "destination_addr": to_addr,
                "esm_class": part.esm_class,
                "registered_delivery": self._registered_delivery,
                "data_coding": data_coding,
                "short_message": part.short_message,
                "tlvs": {**part.tlvs, **extra_tlvs} if extra_tlvs else part.tlvs,
            }
            for part in parts
        ]

    def _next_reference(self) -> int:
        """The next concatenation reference (only used by split messages)."""
        self._reference = (self._reference + 1) % 0x10000
        if self._method is MultipartMethod.SAR:
            return self._reference % self._config.sar_reference_rollover
        return self._reference

    def _ussd_tlvs(self, message: UserMessage) -> dict[int, int]:
        """``ussd_service_op`` and ``its_session_info`` for a USSD message.

        The session info is the one the MO brought (``transport_metadata``,
        copied by replies), with the end-of-session bit set to close.
        """
        # Not trusted to be a dict: it came from the wire.
        metadata: object = message.get("transport_metadata") or {}
        session_info = (
            metadata.get("session_info") if isinstance(metadata, dict) else None
        )
        if message.get("transport_type") != "ussd" and session_info is None:
            return {}
        close = message.get("session_event") == SESSION_CLOSE
        config = self._config
        op = config.ussd_close_service_op if close else config.ussd_reply_service_op
        tlvs = {int(Tag.USSD_SERVICE_OP): int(op, 16)}
        if session_info is not None:
            try:
                info = int(str(session_info), 16) & 0xFFFE
            except ValueError:
                raise Rejected(f"Invalid session_info: {session_info!r}") from None
            tlvs[int(Tag.ITS_SESSION_INFO)] = info | (1 if close else 0)
        return tlvs


def _address(message: UserMessage, field: str, *, required: bool) -> str:
    value = message.get(field)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or not value or not value.isascii():
        raise Rejected(f"Invalid {field}: {value!r}")
    if len(value) > MAX_ADDRESS_LENGTH:
        raise Rejected(
            f"Invalid {field}: {value!r} is longer than {MAX_ADDRESS_LENGTH} characters"
        )
    if "\x00" in value:
        raise Rejected(f"Invalid {field}: {value!r}")
    return value
