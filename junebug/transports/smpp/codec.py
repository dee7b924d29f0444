"""Text encodings for SMPP, and long messages split into parts and back.

``data_coding`` says how ``short_message`` is encoded.  :class:`DataCodings`
maps each value to a :class:`TextCodec`: GSM 03.38 unpacked for 0, IA5/ASCII
for 1, Latin-1 for 3, UCS-2 for 8 and the others of SMPP 3.4 section 5.2.19,
with per-channel overrides.  Values above 0x0F are read as GSM 03.38 data
coding schemes (message class groups) when not mapped.  "UCS-2" is encoded
as UTF-16-BE, so characters outside the BMP travel as surrogate pairs, as
phones do.

MT: :func:`choose_encoding` picks GSM 03.38 when it can carry the text and
UCS-2 otherwise; :func:`split_message` cuts text into parts on character
boundaries, and :func:`encode_parts` turns the parts into ``short_message``,
``esm_class`` and TLVs for one of the :class:`MultipartMethod` methods.

MO: :func:`multipart_info` finds a part's concatenation reference (SAR TLVs
or a UDH), and :class:`MultipartReassembler` holds parts until the message is
complete.

Per-part capacities (one SMS carries 140 octets, i.e. 160 septets):

======================  =========  ============  =============  =============
unit                    single     UDH 8-bit     UDH 16-bit     SAR
======================  =========  ============  =============  =============
septets (GSM, IA5)      160        153           152            152
octets (8-bit codecs)   140        134           133            133
UCS-2 (2 or 4 octets)   140 (70)   134 (67)      133 (66)       133 (66)
======================  =========  ============  =============  =============

With SAR the SMSC writes the UDH; as ``sar_msg_ref_num`` is 16 bits it may
need the 7-octet form, so SAR parts are sized for it.  IA5 is counted in
septets because SMSCs deliver it as GSM 03.38, where ``[`` and friends take
two septets.  ``message_payload`` carries up to 65535 octets in one PDU.
"""

from __future__ import annotations

import codecs
import enum
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Final

import attrs

from junebug.transports.smpp.gsm0338 import (
    gsm_decode,
    gsm_encode,
    is_gsm_encodable,
)
from junebug.transports.smpp.pdu import (
    ESM_CLASS_UDHI,
    MAX_SHORT_MESSAGE_LENGTH,
    PDU,
    Tag,
    TLVValue,
)

__all__ = [
    "DEFAULT_DATA_CODINGS",
    "GSM0338",
    "IA5",
    "MAX_PARTS",
    "MAX_PAYLOAD_LENGTH",
    "UCS2",
    "Concatenation",
    "DataCodings",
    "InformationElement",
    "MultipartInfo",
    "MultipartMethod",
    "PartFields",
    "Segment",
    "SplitError",
    "TextCodec",
    "UDHError",
    "Unit",
    "UnknownDataCodingError",
    "build_udh",
    "choose_encoding",
    "concatenation",
    "decode_parts",
    "encode_parts",
    "lookup_codec",
    "message_content",
    "multipart_info",
    "parse_udh",
    "part_capacity",
    "single_capacity",
    "split_message",
]

#: ``data_coding`` of UCS-2, the encoding that carries any text.
UCS2: Final = 8
MAX_PARTS: Final = 255
MAX_PAYLOAD_LENGTH: Final = 0xFFFF

# --------------------------------------------------------------------------
# Codecs


class Unit(enum.Enum):
    """What one SMS's capacity is counted in."""

    SEPTETS = "septets"
    OCTETS = "octets"


@attrs.frozen
class TextCodec:
    """An encoding usable for ``short_message``."""

    name: str
    encode: Callable[[str, str], bytes]
    decode: Callable[[bytes, str], str]
    unit: Unit = Unit.OCTETS

    def can_encode(self, text: str) -> bool:
        """True if ``text`` encodes and decodes back unchanged."""
        try:
            return self.decode(self.encode(text, "strict"), "strict") == text
        except (UnicodeError, ValueError):
            return False


def _python_codec(name: str, python_name: str) -> TextCodec:
    info = codecs.lookup(python_name)

    def encode(text: str, errors: str) -> bytes:
        return info.encode(text, errors)[0]

    def decode(data: bytes, errors: str) -> str:
        return info.decode(data, errors)[0]

    return TextCodec(name, encode, decode, Unit.OCTETS)


def _ia5_encode(text: str, errors: str) -> bytes:
    return text.encode("ascii", errors)


def _ia5_decode(data: bytes, errors: str) -> str:
    return data.decode("ascii", errors)


GSM0338: Final = TextCodec("gsm0338", gsm_encode, gsm_decode, Unit.SEPTETS)
IA5: Final = TextCodec("ascii", _ia5_encode, _ia5_decode, Unit.SEPTETS)
_UTF16BE: Final = _python_codec("ucs2", "utf-16-be")

_SPECIAL_CODECS: Final[Mapping[str, TextCodec]] = {
    "gsm0338": GSM0338,
    "gsm": GSM0338,
    "ascii": IA5,
    "ia5": IA5,
    "ucs2": _UTF16BE,
    "ucs-2": _UTF16BE,
    "utf-16-be": _UTF16BE,
    "utf_16_be": _UTF16BE,
    "utf-16be": _UTF16BE,
    "utf16be": _UTF16BE,
}


def lookup_codec(name: str) -> TextCodec:
    """The codec called ``name``: ``gsm0338``, ``ucs2`` or any Python codec.

    Raises :class:`LookupError` for an unknown name.
    """
    special = _SPECIAL_CODECS.get(name.lower())
    if special is not None:
        return special
    python_name = codecs.lookup(name).name
    special = _SPECIAL_CODECS.get(python_name)
    if special is not None:
        return special
    return _python_codec(name, python_name)


#: SMPP 3.4 ``data_coding`` values (section 5.2.19) and their codecs.  2 and
#: 4 are binary data and 13 (JIS X 0212) has no Python codec: none is mapped.
DEFAULT_DATA_CODINGS: Final[Mapping[int, str]] = {
    0: "gsm0338",
    1: "ascii",
    3: "latin-1",
    5: "iso2022_jp",
    6: "iso8859_5",
    7: "iso8859_8",
    8: "ucs2",
    9: "shift_jis",
    10: "iso2022_jp",
    14: "euc_kr",
}


class UnknownDataCodingError(LookupError):
    """No codec is configured for a ``data_coding`` (it may be binary)."""

    def __init__(self, data_coding: int) -> None:
        super().__init__(f"no codec for data_coding {data_coding}")
        self.data_coding = data_coding


def _gsm_scheme_codec(data_coding: int) -> TextCodec | None:
    """The alphabet a GSM 03.38 data coding scheme (0x10..0xFF) names."""
    group = data_coding >> 4
    if group <= 0x7:  # general data coding (and marked for deletion)
        if data_coding & 0x20:  # compressed
            return None
        return {0: GSM0338, 2: _UTF16BE}.get((data_coding >> 2) & 0x3)
    if group in (0xC, 0xD):  # message waiting, GSM 7-bit
        return GSM0338
    if group == 0xE:  # message waiting, UCS-2
        return _UTF16BE
    if group == 0xF:  # data coding / message class
        return None if data_coding & 0x04 else GSM0338
    return None


class DataCodings:
    """Which codec each ``data_coding`` value uses.

    ``overrides`` replaces or adds entries of :data:`DEFAULT_DATA_CODINGS`;
    its keys may be ints or digit strings (``{"0": "latin-1"}``), as config
    files give them.  Unknown codec names fail here, at configuration time.
    """

    def __init__(self, overrides: Mapping[int | str, str] | None = None) -> None:
        names: dict[int, str] = dict(DEFAULT_DATA_CODINGS)
        for key, name in (overrides or {}).items():
            names[_data_coding_key(key)] = name
        self.names: Mapping[int, str] = names
        self._codecs = {key: lookup_codec(name) for key, name in names.items()}

    def codec_for(self, data_coding: int) -> TextCodec | None:
        """The codec for ``data_coding``, or ``None`` if it is binary."""
        codec = self._codecs.get(data_coding)
        if codec is None and data_coding > 0x0F:
            return _gsm_scheme_codec(data_coding)
        return codec

    def _require(self, data_coding: int) -> TextCodec:
        codec = self.codec_for(data_coding)
        if codec is None:
            raise UnknownDataCodingError(data_coding)
        return codec

    def encode(self, text: str, data_coding: int, errors: str = "strict") -> bytes:
        """Encode ``text``; raise :class:`UnknownDataCodingError` or UnicodeError."""
        return self._require(data_coding).encode(text, errors)

    def decode(self, data: bytes, data_coding: int, errors: str = "strict") -> str:
        """Decode ``data``; raise :class:`UnknownDataCodingError` or UnicodeError."""
        return self._require(data_coding).decode(data, errors)


def _data_coding_key(key: int | str) -> int:
    if isinstance(key, str):
        if not key.strip().isdigit():
            raise ValueError(f"data_coding must be a number, not {key!r}")
        key = int(key)
    if not 0 <= key <= 0xFF:
        raise ValueError(f"data_coding must be 0..255, not {key}")
    return key


_DEFAULT_CODINGS: Final = DataCodings()


def choose_encoding(
    text: str,
    prefer: int | Sequence[int] = 0,
    data_codings: DataCodings = _DEFAULT_CODINGS,
) -> int:
    """The first ``data_coding`` in ``prefer`` that carries ``text`` unchanged.

    Falls back to UCS-2 (8), which carries any text.  The default prefers
    GSM 03.38 (0); ``prefer=(3, 0)`` would try Latin-1 first.
    """
    candidates = (prefer,) if isinstance(prefer, int) else prefer
    for data_coding in candidates:
        codec = data_codings.codec_for(data_coding)
        if codec is GSM0338:
            if is_gsm_encodable(text):
                return data_coding
        elif codec is not None and codec.can_encode(text):
            return data_coding
    return UCS2


# --------------------------------------------------------------------------
# MT: splitting


class MultipartMethod(enum.Enum):
    """How a message too long for one SMS is sent (values are config names)."""

    #: No splitting: one ``short_message`` of at most 254 octets.
    SHORT_MESSAGE = "short_message"
    #: One PDU; the text goes in ``message_payload`` when it is too long.
    MESSAGE_PAYLOAD = "message_payload"
    #: ``sar_msg_ref_num``, ``sar_total_segments`` and ``sar_segment_seqnum``.
    SAR = "multipart_sar"
    #: A UDH with an 8-bit reference (IEI 0x00) and ``esm_class`` 0x40.
    UDH = "multipart_udh"
    #: A UDH with a 16-bit reference (IEI 0x08) and ``esm_class`` 0x40.
    UDH16 = "multipart_udh16"


_SINGLE_CAPACITY: Final = {Unit.SEPTETS: 160, Unit.OCTETS: 140}
_PART_CAPACITY: Final = {
    (Unit.SEPTETS, MultipartMethod.UDH): 153,
    (Unit.SEPTETS, MultipartMethod.UDH16): 152,
    (Unit.SEPTETS, MultipartMethod.SAR): 152,
    (Unit.OCTETS, MultipartMethod.UDH): 134,
    (Unit.OCTETS, MultipartMethod.UDH16): 133,
    (Unit.OCTETS, MultipartMethod.SAR): 133,
}


class SplitError(ValueError):
    """A message cannot be sent with the chosen method (too long)."""


@attrs.frozen
class Segment:
    """One part of a message: its text and that text encoded."""

    text: str
    data: bytes


def single_capacity(codec: TextCodec) -> int:
    """How many units (septets or octets) one unsplit SMS carries."""
    return _SINGLE_CAPACITY[codec.unit]


def part_capacity(codec: TextCodec, method: MultipartMethod) -> int:
    """How many units each part carries when a message is split."""
    if method is MultipartMethod.SHORT_MESSAGE:
        return MAX_SHORT_MESSAGE_LENGTH
    if method is MultipartMethod.MESSAGE_PAYLOAD:
        return MAX_PAYLOAD_LENGTH
    return _PART_CAPACITY[codec.unit, method]


def _cost_function(codec: TextCodec) -> Callable[[str], int]:
    """How many units a run of text takes in ``codec``."""
    if codec is IA5:
        # Delivered as GSM 03.38: extension characters take two septets.
        return lambda text: len(gsm_encode(text, "replace"))
    return lambda text: len(codec.encode(text, "strict"))


def split_message(
    text: str,
    data_coding: int,
    method: MultipartMethod,
    data_codings: DataCodings = _DEFAULT_CODINGS,
) -> list[Segment]:
    """Split ``text`` into the parts to send with ``method``.

    Parts are cut between characters, so a GSM escape pair or a UTF-16
    surrogate pair is never split.  Text that fits one SMS is one part.
    Raises :class:`UnicodeEncodeError` if the encoding cannot carry the
    text, :class:`UnknownDataCodingError`, or :class:`SplitError` when the text
    needs more than 255 parts or does not fit a single-PDU method.
    """
    codec = data_codings.codec_for(data_coding)
    if codec is None:
        raise UnknownDataCodingError(data_coding)
    data = codec.encode(text, "strict")
    cost = _cost_function(codec)
    if method in (MultipartMethod.SHORT_MESSAGE, MultipartMethod.MESSAGE_PAYLOAD):
        capacity = part_capacity(codec, method)
        if len(data) > capacity:
            raise SplitError(
                f"{len(data)} octets do not fit {method.value} ({capacity} octets)"
            )
        return [Segment(text, data)]
    if cost(text) <= single_capacity(codec):
        return [Segment(text, data)]
    texts = _split_text(text, part_capacity(codec, method), cost)
    if len(texts) > MAX_PARTS:
        raise SplitError(f"{len(texts)} parts are needed; the maximum is 255")
    return [Segment(part, codec.encode(part, "strict")) for part in texts]


def _split_text(text: str, capacity: int, cost: Callable[[str], int]) -> list[str]:
    """Cut ``text`` greedily into runs costing at most ``capacity`` each.

    Each character's cost is measured alone; a run is then measured whole,
    and shortened if a stateful codec makes it dearer than its characters.
    """
    char_costs: dict[str, int] = {}
    parts: list[str] = []
    start = 0
    used = 0
    index = 0
    while index < len(text):
        char = text[index]
        char_cost = char_costs.get(char)
        if char_cost is None:
            char_cost = char_costs[char] = cost(char)
        if used + char_cost > capacity and index > start:
            end = _fit(text, start, index, capacity, cost)
            parts.append(text[start:end])
            start, used, index = end, 0, end
            continue
        used += char_cost
        index += 1
    end = len(text)
    while start < end:
        cut = _fit(text, start, end, capacity, cost)
        parts.append(text[start:cut])
        start = cut
    return parts


def _fit(
    text: str, start: int, end: int, capacity: int, cost: Callable[[str], int]
) -> int:
    """The largest ``cut <= end`` with ``text[start:cut]`` within capacity."""
    cut = end
    while cut > start + 1 and cost(text[start:cut]) > capacity:
        cut -= 1
    return cut


@attrs.frozen
class PartFields:
    """The ``submit_sm`` fields that carry one part."""

    short_message: bytes
    #: Bits to OR into ``esm_class`` (0x40 when a UDH leads the message).
    esm_class: int = 0
    tlvs: Mapping[int, TLVValue] = attrs.field(factory=dict)


def build_udh(ref: int, total: int, seqnum: int, *, ref16: bool = False) -> bytes:
    """A concatenation UDH: ``05 00 03 ref total n`` or ``06 08 04 ref ref
    total n``."""
    if not 1 <= seqnum <= total <= MAX_PARTS:
        raise ValueError(f"bad part {seqnum} of {total}")
    if ref16:
        return bytes((6, 0x08, 4, (ref >> 8) & 0xFF, ref & 0xFF, total, seqnum))
    return bytes((5, 0x00, 3, ref & 0xFF, total, seqnum))


def encode_parts(
    segments: Sequence[Segment],
    method: MultipartMethod,
    ref: int = 0,
    *,
    always_payload: bool = False,
) -> list[PartFields]:
    """The fields of each ``submit_sm`` for ``segments`` sent with ``method``.

    ``ref`` is the concatenation reference (taken modulo 256 for an 8-bit
    UDH and 65536 otherwise); it is unused for a single part.  With
    ``MESSAGE_PAYLOAD`` the text goes in ``message_payload`` only when it is
    longer than one ``short_message`` can be, or always if
    ``always_payload`` (vumi's ``send_long_messages``).
    """
    if method is MultipartMethod.MESSAGE_PAYLOAD:
        (segment,) = segments
        if always_payload or len(segment.data) > MAX_SHORT_MESSAGE_LENGTH:
            return [PartFields(b"", tlvs={Tag.MESSAGE_PAYLOAD: segment.data})]
        return [PartFields(segment.data)]
    total = len(segments)
    if total == 1:
        return [PartFields(segments[0].data)]
    if method is MultipartMethod.SAR:
        return [
            PartFields(
                segment.data,
                tlvs={
                    Tag.SAR_MSG_REF_NUM: ref & 0xFFFF,
                    Tag.SAR_TOTAL_SEGMENTS: total,
                    Tag.SAR_SEGMENT_SEQNUM: seqnum,
                },
            )
            for seqnum, segment in enumerate(segments, 1)
        ]
    if method in (MultipartMethod.UDH, MultipartMethod.UDH16):
        ref16 = method is MultipartMethod.UDH16
        return [
            PartFields(
                build_udh(ref, total, seqnum, ref16=ref16) + segment.data,
                esm_class=ESM_CLASS_UDHI,
            )
            for seqnum, segment in enumerate(segments, 1)
        ]
    raise SplitError(f"{method.value} cannot send {total} parts")


# --------------------------------------------------------------------------
# MO: multipart detection and reassembly


class UDHError(ValueError):
    """A user data header that runs past the message or past itself."""


@attrs.frozen
class InformationElement:
    """One UDH information element."""

    iei: int
    data: bytes


def parse_udh(short_message: bytes) -> tuple[tuple[InformationElement, ...], bytes]:
    """Split ``short_message`` (``esm_class`` has UDHI) into its UDH's
    information elements and the rest of the message."""
    if not short_message:
        raise UDHError("an empty message has no UDH")
    end = 1 + short_message[0]
    if end > len(short_message):
        raise UDHError(f"UDH length {short_message[0]} runs past the message")
    elements = []
    index = 1
    while index < end:
        if index + 2 > end:
            raise UDHError("truncated information element")
        iei, length = short_message[index], short_message[index + 1]
        if index + 2 + length > end:
            raise UDHError(f"information element 0x{iei:02X} runs past the UDH")
        elements.append(
            InformationElement(iei, short_message[index + 2 : index + 2 + length])
        )
        index += 2 + length
    return tuple(elements), short_message[end:]


@attrs.frozen
class Concatenation:
    """A part's place in a concatenated message."""

    ref: int
    total: int
    seqnum: int


def concatenation(elements: Iterable[InformationElement]) -> Concatenation | None:
    """The concatenation element (IEI 0x00 or 0x08) among ``elements``."""
    for element in elements:
        if element.iei == 0x00 and len(element.data) == 3:
            ref, total, seqnum = element.data
            return Concatenation(ref, total, seqnum)
        if element.iei == 0x08 and len(element.data) == 4:
            ref = int.from_bytes(element.data[:2], "big")
            return Concatenation(ref, element.data[2], element.data[3])
    return None


@attrs.frozen
class MultipartInfo:
    """One part of an MO multipart message: where it goes and its content."""

    ref: int
    total: int
    seqnum: int
    #: The content, without UDH, not decoded.
    data: bytes


def message_content(pdu: PDU) -> bytes:
    """A ``deliver_sm``/``data_sm``'s content: ``message_payload`` if present,
    else ``short_message`` without its UDH.

    Raises :class:`UDHError` if UDHI is set and the UDH is malformed.
    """
    content = _raw_content(pdu)
    if getattr(pdu, "esm_class", 0) & ESM_CLASS_UDHI and content:
        _, content = parse_udh(content)
    return content


def _raw_content(pdu: PDU) -> bytes:
    payload = pdu.tlv(Tag.MESSAGE_PAYLOAD)
    if isinstance(payload, bytes):
        return payload
    short_message = getattr(pdu, "short_message", b"")
    assert isinstance(short_message, bytes)
    return short_message


def multipart_info(pdu: PDU) -> MultipartInfo | None:
    """The multipart reference of an MO PDU, from SAR TLVs or a UDH.

    ``None`` for a message in one part.  Raises :class:`UDHError` if UDHI
    is set and the UDH is malformed.
    """
    ref = pdu.tlv(Tag.SAR_MSG_REF_NUM)
    total = pdu.tlv(Tag.SAR_TOTAL_SEGMENTS)
    seqnum = pdu.tlv(Tag.SAR_SEGMENT_SEQNUM)
    if isinstance(ref, int) and isinstance(total, int) and isinstance(seqnum, int):
        return MultipartInfo(ref, total, seqnum, message_content(pdu))
    content = _raw_content(pdu)
    if not getattr(pdu, "esm_class", 0) & ESM_CLASS_UDHI or not content:
        return None
    elements, data = parse_udh(content)
    concat = concatenation(elements)
    if concat is None:
        return None
    return MultipartInfo(concat.ref, concat.total, concat.seqnum, data)


def decode_parts(
    parts: Sequence[tuple[bytes, int]],
    data_codings: DataCodings = _DEFAULT_CODINGS,
    errors: str = "strict",
) -> str:
    """The text of a message from its parts' ``(data, data_coding)``, in order.

    The parts are joined before decoding, so a character split across parts
    survives; if the parts disagree on ``data_coding`` each is decoded on its
    own.  Raises :class:`UnicodeDecodeError` or
    :class:`UnknownDataCodingError` if the text cannot be decoded.
    """
    codings = {data_coding for _, data_coding in parts}
    if len(codings) == 1:
        joined = b"".join(data for data, _ in parts)
        return data_codings.decode(joined, codings.pop(), errors)
    return "".join(
        data_codings.decode(data, data_coding, errors) for data, data_coding in parts
    )
