"""The GSM 03.38 (3GPP TS 23.038) default alphabet.

SMPP carries ``data_coding`` 0 text *unpacked*: one septet per octet, and the
SMSC packs it for the air interface.  :func:`gsm_encode` and :func:`gsm_decode`
work on that unpacked form.  A character of the extension table costs two
septets: the escape 0x1B, then its code.  :func:`pack_septets` and
:func:`unpack_septets` convert between unpacked septets and the packed 7-bit
form, with optional fill bits for text that follows a user data header.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

ESCAPE: Final = 0x1B

#: The basic table; the entry at 0x1B is the escape and is never a character.
BASIC_TABLE: Final = (
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)

#: The extension table: code after the escape -> character.
EXTENSION_TABLE: Final[Mapping[int, str]] = {
    0x0A: "\x0c",  # form feed (page break)
    0x14: "^",
    0x28: "{",
    0x29: "}",
    0x2F: "\\",
    0x3C: "[",
    0x3D: "~",
    0x3E: "]",
    0x40: "|",
    0x65: "€",
}

_ENCODE: Final[dict[str, bytes]] = {
    char: bytes((code,)) for code, char in enumerate(BASIC_TABLE) if code != ESCAPE
}
_ENCODE.update({char: bytes((ESCAPE, code)) for code, char in EXTENSION_TABLE.items()})
#: Every character GSM 03.38 can carry.
GSM_CHARACTERS: Final = frozenset(_ENCODE)
_BASIC_DECODE: Final = {
    code: char for code, char in enumerate(BASIC_TABLE) if code != ESCAPE
}
_REPLACEMENT: Final = {"replace": "\ufffd", "ignore": ""}


def is_gsm_encodable(text: str) -> bool:
    """True if every character of ``text`` is in the GSM 03.38 alphabet."""
    return GSM_CHARACTERS.issuperset(text)


def gsm_septet_count(text: str) -> int:
    """How many septets ``text`` needs (2 per extension character)."""
    return len(gsm_encode(text))


def gsm_encode(text: str, errors: str = "strict") -> bytes:
    """Encode ``text`` as unpacked GSM 03.38 septets, one per octet.

    ``errors`` is ``strict`` (raise :class:`UnicodeEncodeError`),
    ``replace`` (use ``?``) or ``ignore``.
    """
    encode = _ENCODE
    try:
        return b"".join([encode[char] for char in text])
    except KeyError:
        pass
    out = []
    for index, char in enumerate(text):
        code = encode.get(char)
        if code is not None:
            out.append(code)
        elif errors == "replace":
            out.append(b"?")
        elif errors != "ignore":
            raise UnicodeEncodeError(
                "gsm0338", text, index, index + 1, "not in the GSM 03.38 alphabet"
            )
    return b"".join(out)


def gsm_decode(data: bytes, errors: str = "strict") -> str:
    """Decode unpacked GSM 03.38 septets.

    Following TS 23.038, an escape before a code without an extension
    character yields the basic table's character, and a doubled escape (or
    one at the very end) yields a space.  An octet above 0x7F is an error
    handled per ``errors`` (``strict``, ``replace`` or ``ignore``).
    """
    out = []
    index = 0
    length = len(data)
    while index < length:
        code = data[index]
        if code == ESCAPE:
            index += 1
            if index == length or data[index] == ESCAPE:
                out.append(" ")
            elif data[index] in EXTENSION_TABLE:
                out.append(EXTENSION_TABLE[data[index]])
            elif data[index] < 0x80:
                out.append(_BASIC_DECODE[data[index]])
            else:
                out.append(_bad_septet(data, index, errors))
        elif code < 0x80:
            out.append(_BASIC_DECODE[code])
        else:
            out.append(_bad_septet(data, index, errors))
        index += 1
    return "".join(out)


def _bad_septet(data: bytes, index: int, errors: str) -> str:
    replacement = _REPLACEMENT.get(errors)
    if replacement is None:
        raise UnicodeDecodeError(
            "gsm0338", data, index, index + 1, "octet above 0x7F is not a septet"
        )
    return replacement


def pack_septets(septets: bytes, fill_bits: int = 0) -> bytes:
    """Pack septets (values 0..0x7F) into octets, least significant bit first.

    ``fill_bits`` (0..6) zero bits come first, aligning text that follows a
    user data header on a septet boundary.
    """
    if not 0 <= fill_bits <= 6:
        raise ValueError(f"fill_bits must be 0..6, not {fill_bits}")
    out = bytearray()
    accumulator = 0
    bits = fill_bits
    for septet in septets:
        if septet > 0x7F:
            raise ValueError(f"0x{septet:02X} is not a septet")
        accumulator |= septet << bits
        bits += 7
        while bits >= 8:
            out.append(accumulator & 0xFF)
            accumulator >>= 8
            bits -= 8
    if bits:
        out.append(accumulator)
    return bytes(out)


def unpack_septets(data: bytes, count: int | None = None, fill_bits: int = 0) -> bytes:
    """Unpack packed 7-bit data into one septet per octet.

    ``count`` is the number of septets (the TP-UDL); without it, every whole
    septet is returned, which may add a trailing ``@`` (0x00) when 7 spare
    bits end the data.
    """
    if not 0 <= fill_bits <= 6:
        raise ValueError(f"fill_bits must be 0..6, not {fill_bits}")
    available = (len(data) * 8 - fill_bits) // 7 if data else 0
    if count is None:
        count = available
    elif not 0 <= count <= available:
        raise ValueError(f"{len(data)} octets cannot hold {count} septets")
    out = bytearray()
    accumulator = 0
    bits = 0
    for index, octet in enumerate(data):
        if len(out) == count:
            break
        if index == 0:
            accumulator, bits = octet >> fill_bits, 8 - fill_bits
        else:
            accumulator |= octet << bits
            bits += 8
        while bits >= 7 and len(out) < count:
            out.append(accumulator & 0x7F)
            accumulator >>= 7
            bits -= 7
    return bytes(out)
