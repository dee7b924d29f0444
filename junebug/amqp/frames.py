"""AMQP 0-9-1 frames: the wire format :mod:`junebug.amqp.client` speaks.

Only what Junebug uses is here: the connection handshake, channels, exchange
and queue declarations, ``basic.*`` with publisher confirms, and field tables.
A frame is ``type (octet) channel (short) size (long) payload 0xCE``; a method
payload starts with its class and method ids, then its arguments, in the
order and types of the AMQP 0-9-1 specification.

Encoding is by :func:`method` (any method from a format string) and by the
pre-built publish frames of :func:`publish_frames`, which is the hot path.
Decoding is by :class:`FrameReader` (whole frames from any chunking of the
stream) and :func:`decode_method`, which turns a method payload into
:class:`Method` with its arguments by name.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final

__all__ = [
    "FRAME_BODY",
    "FRAME_HEADER",
    "FRAME_HEARTBEAT",
    "FRAME_METHOD",
    "PROTOCOL_HEADER",
    "FrameError",
    "FrameReader",
    "Method",
    "decode_method",
    "decode_properties",
    "encode_table",
    "frame",
    "method",
    "publish_frames",
]

PROTOCOL_HEADER: Final = b"AMQP\x00\x00\x09\x01"
FRAME_METHOD: Final = 1
FRAME_HEADER: Final = 2
FRAME_BODY: Final = 3
FRAME_HEARTBEAT: Final = 8
FRAME_END: Final = 0xCE
HEARTBEAT_FRAME: Final = b"\x08\x00\x00\x00\x00\x00\x00\xce"

_FRAME_START = struct.Struct("!BHI")
_IDS = struct.Struct("!HH")
_CONTENT_HEADER = struct.Struct("!HHQH")


class FrameError(Exception):
    """The peer sent bytes that are not AMQP 0-9-1 (a connection error)."""


# -- method ids and argument formats -------------------------------------------
#
# Format letters: o octet, s short, l long, L longlong, n shortstr, S longstr,
# T table, b a bit (consecutive bits share octets, as the spec packs them).

#: (class id, method id) -> (name, argument names, format)
METHODS: Final[dict[tuple[int, int], tuple[str, tuple[str, ...], str]]] = {}


def _define(class_id: int, method_id: int, name: str, args: str) -> tuple[int, int]:
    names: list[str] = []
    fmt = ""
    for spec in args.split():
        arg, letter = spec.split(":")
        names.append(arg)
        fmt += letter
    METHODS[(class_id, method_id)] = (name, tuple(names), fmt)
    return (class_id, method_id)


CONNECTION_START = _define(
    10,
    10,
    "connection.start",
    "version_major:o version_minor:o server_properties:T mechanisms:S locales:S",
)
CONNECTION_START_OK = _define(
    10, 11, "connection.start-ok", "client_properties:T mechanism:n response:S locale:n"
)
CONNECTION_SECURE = _define(10, 20, "connection.secure", "challenge:S")
CONNECTION_TUNE = _define(
    10, 30, "connection.tune", "channel_max:s frame_max:l heartbeat:s"
)
CONNECTION_TUNE_OK = _define(
    10, 31, "connection.tune-ok", "channel_max:s frame_max:l heartbeat:s"
)
CONNECTION_OPEN = _define(
    10, 40, "connection.open", "virtual_host:n reserved_1:n reserved_2:b"
)
CONNECTION_OPEN_OK = _define(10, 41, "connection.open-ok", "reserved_1:n")
CONNECTION_CLOSE = _define(
    10, 50, "connection.close", "reply_code:s reply_text:n class_id:s method_id:s"
)
CONNECTION_CLOSE_OK = _define(10, 51, "connection.close-ok", "")
CONNECTION_BLOCKED = _define(10, 60, "connection.blocked", "reason:n")
CONNECTION_UNBLOCKED = _define(10, 61, "connection.unblocked", "")

CHANNEL_OPEN = _define(20, 10, "channel.open", "reserved_1:n")
CHANNEL_OPEN_OK = _define(20, 11, "channel.open-ok", "reserved_1:S")
CHANNEL_FLOW = _define(20, 20, "channel.flow", "active:b")
CHANNEL_FLOW_OK = _define(20, 21, "channel.flow-ok", "active:b")
CHANNEL_CLOSE = _define(
    20, 40, "channel.close", "reply_code:s reply_text:n class_id:s method_id:s"
)
CHANNEL_CLOSE_OK = _define(20, 41, "channel.close-ok", "")

EXCHANGE_DECLARE = _define(
    40,
    10,
    "exchange.declare",
    "reserved_1:s exchange:n type:n passive:b durable:b auto_delete:b internal:b"
    " no_wait:b arguments:T",
)
EXCHANGE_DECLARE_OK = _define(40, 11, "exchange.declare-ok", "")

QUEUE_DECLARE = _define(
    50,
    10,
    "queue.declare",
    "reserved_1:s queue:n passive:b durable:b exclusive:b auto_delete:b no_wait:b"
    " arguments:T",
)
QUEUE_DECLARE_OK = _define(
    50, 11, "queue.declare-ok", "queue:n message_count:l consumer_count:l"
)
QUEUE_BIND = _define(
    50,
    20,
    "queue.bind",
    "reserved_1:s queue:n exchange:n routing_key:n no_wait:b arguments:T",
)
QUEUE_BIND_OK = _define(50, 21, "queue.bind-ok", "")
QUEUE_PURGE = _define(50, 30, "queue.purge", "reserved_1:s queue:n no_wait:b")
QUEUE_PURGE_OK = _define(50, 31, "queue.purge-ok", "message_count:l")
QUEUE_DELETE = _define(
    50, 40, "queue.delete", "reserved_1:s queue:n if_unused:b if_empty:b no_wait:b"
)
QUEUE_DELETE_OK = _define(50, 41, "queue.delete-ok", "message_count:l")

BASIC_QOS = _define(60, 10, "basic.qos", "prefetch_size:l prefetch_count:s global:b")
BASIC_QOS_OK = _define(60, 11, "basic.qos-ok", "")
BASIC_CONSUME = _define(
    60,
    20,
    "basic.consume",
    "reserved_1:s queue:n consumer_tag:n no_local:b no_ack:b exclusive:b no_wait:b"
    " arguments:T",
)
BASIC_CONSUME_OK = _define(60, 21, "basic.consume-ok", "consumer_tag:n")
BASIC_CANCEL = _define(60, 30, "basic.cancel", "consumer_tag:n no_wait:b")
BASIC_CANCEL_OK = _define(60, 31, "basic.cancel-ok", "consumer_tag:n")
BASIC_PUBLISH = _define(
    60,
    40,
    "basic.publish",
    "reserved_1:s exchange:n routing_key:n mandatory:b immediate:b",
)
BASIC_RETURN = _define(
    60, 50, "basic.return", "reply_code:s reply_text:n exchange:n routing_key:n"
)
BASIC_DELIVER = _define(
    60,
    60,
    "basic.deliver",
    "consumer_tag:n delivery_tag:L redelivered:b exchange:n routing_key:n",
)
BASIC_GET = _define(60, 70, "basic.get", "reserved_1:s queue:n no_ack:b")
BASIC_GET_OK = _define(
    60,
    71,
    "basic.get-ok",
    "delivery_tag:L redelivered:b exchange:n routing_key:n message_count:l",
)
BASIC_GET_EMPTY = _define(60, 72, "basic.get-empty", "reserved_1:n")
BASIC_ACK = _define(60, 80, "basic.ack", "delivery_tag:L multiple:b")
BASIC_REJECT = _define(60, 90, "basic.reject", "delivery_tag:L requeue:b")
BASIC_NACK = _define(60, 120, "basic.nack", "delivery_tag:L multiple:b requeue:b")

CONFIRM_SELECT = _define(85, 10, "confirm.select", "no_wait:b")
CONFIRM_SELECT_OK = _define(85, 11, "confirm.select-ok", "")

#: Methods followed by a content header and body frames.
CONTENT_METHODS: Final = frozenset({BASIC_DELIVER, BASIC_GET_OK, BASIC_RETURN})


class Method:
    """A decoded method: its ids, its name and its arguments by name."""

    __slots__ = ("args", "ids", "name")

    def __init__(self, ids: tuple[int, int], name: str, args: dict[str, Any]):
        self.ids = ids
        self.name = name
        self.args = args

    def __getitem__(self, key: str) -> Any:
        return self.args[key]

    def __repr__(self) -> str:
        return f"<{self.name} {self.args!r}>"


# -- encoding ------------------------------------------------------------------


def frame(kind: int, channel: int, payload: bytes) -> bytes:
    """One whole frame."""
    return _FRAME_START.pack(kind, channel, len(payload)) + payload + b"\xce"


def _shortstr(value: str | bytes) -> bytes:
    raw = value.encode("utf-8") if isinstance(value, str) else value
    if len(raw) > 255:
        raise ValueError(f"short string longer than 255 bytes: {raw[:40]!r}...")
    return bytes((len(raw),)) + raw


def _longstr(value: str | bytes) -> bytes:
    raw = value.encode("utf-8") if isinstance(value, str) else value
    return struct.pack("!I", len(raw)) + raw


def _field_value(value: Any) -> bytes:
    if value is None:
        return b"V"
    if isinstance(value, bool):
        return b"t" + (b"\x01" if value else b"\x00")
    if isinstance(value, int):
        if -(2**31) <= value < 2**31:
            return b"I" + struct.pack("!i", value)
        return b"l" + struct.pack("!q", value)
    if isinstance(value, float):
        return b"d" + struct.pack("!d", value)
    if isinstance(value, str):
        return b"S" + _longstr(value)
    if isinstance(value, bytes):
        return b"x" + _longstr(value)
    if isinstance(value, dict):
        return b"F" + encode_table(value)
    if isinstance(value, list | tuple):
        items = b"".join(_field_value(item) for item in value)
        return b"A" + struct.pack("!I", len(items)) + items
    raise TypeError(f"cannot put {type(value).__name__} in an AMQP field table")


def encode_table(table: dict[str, Any] | None) -> bytes:
    """A field table (``None`` is the empty table)."""
    if not table:
        return b"\x00\x00\x00\x00"
    body = b"".join(_shortstr(k) + _field_value(v) for k, v in table.items())
    return struct.pack("!I", len(body)) + body


def method(channel: int, ids: tuple[int, int], **args: Any) -> bytes:
    """A whole method frame; arguments left out are 0, "", false or ``{}``."""
    _name, names, fmt = METHODS[ids]
    parts = [_IDS.pack(*ids)]
    bits: list[bool] = []
    for arg, letter in zip(names, fmt, strict=True):
        if letter != "b" and bits:
            parts.append(_pack_bits(bits))
            bits = []
        value = args.get(arg)
        if letter == "b":
            bits.append(bool(value))
        elif letter == "o":
            parts.append(struct.pack("!B", value or 0))
        elif letter == "s":
            parts.append(struct.pack("!H", value or 0))
        elif letter == "l":
            parts.append(struct.pack("!I", value or 0))
        elif letter == "L":
            parts.append(struct.pack("!Q", value or 0))
        elif letter == "n":
            parts.append(_shortstr(value or ""))
        elif letter == "S":
            parts.append(_longstr(value or b""))
        else:  # "T"
            parts.append(encode_table(value))
    if bits:
        parts.append(_pack_bits(bits))
    return frame(FRAME_METHOD, channel, b"".join(parts))


def _pack_bits(bits: list[bool]) -> bytes:
    out = bytearray()
    for start in range(0, len(bits), 8):
        octet = 0
        for i, bit in enumerate(bits[start : start + 8]):
            if bit:
                octet |= 1 << i
        out.append(octet)
    return bytes(out)


#: Content-header property flags (bit 15 is the first property).
_FLAG_CONTENT_TYPE = 1 << 15
_FLAG_DELIVERY_MODE = 1 << 12
_FLAG_EXPIRATION = 1 << 8


def publish_method_payload(exchange: str, routing_key: str) -> bytes:
    """The ``basic.publish`` method payload (not mandatory, not immediate)."""
    return (
        _IDS.pack(*BASIC_PUBLISH)
        + b"\x00\x00"
        + _shortstr(exchange)
        + _shortstr(routing_key)
        + b"\x00"
    )


def publish_properties(
    content_type: str, delivery_mode: int, expiration: str | None = None
) -> bytes:
    """The property flags and list of a content header with these set
    (``expiration``: the message's TTL in milliseconds, as text)."""
    flags = _FLAG_CONTENT_TYPE | _FLAG_DELIVERY_MODE
    if expiration is not None:
        flags |= _FLAG_EXPIRATION
    out = struct.pack("!H", flags) + _shortstr(content_type) + bytes((delivery_mode,))
    if expiration is not None:
        out += _shortstr(expiration)
    return out


def publish_frames(
    channel: int,
    method_payload: bytes,
    properties: bytes,
    body: bytes,
    frame_max: int,
) -> bytes:
    """``basic.publish``, its content header and body frames, as one write.

    ``method_payload`` comes from :func:`publish_method_payload` and
    ``properties`` from :func:`publish_properties` (both cached by callers).
    """
    size = len(body)
    header = b"\x00\x3c\x00\x00" + struct.pack("!Q", size) + properties
    parts = [
        _FRAME_START.pack(FRAME_METHOD, channel, len(method_payload)),
        method_payload,
        b"\xce",
        _FRAME_START.pack(FRAME_HEADER, channel, len(header)),
        header,
        b"\xce",
    ]
    limit = frame_max - 8
    if size <= limit:
        if size:
            parts += (_FRAME_START.pack(FRAME_BODY, channel, size), body, b"\xce")
    else:
        for start in range(0, size, limit):
            chunk = body[start : start + limit]
            parts += (
                _FRAME_START.pack(FRAME_BODY, channel, len(chunk)),
                chunk,
                b"\xce",
            )
    return b"".join(parts)


# -- decoding ------------------------------------------------------------------


#: How deeply tables and arrays may nest (RabbitMQ's own values nest twice).
MAX_NESTING = 32


class _Cursor:
    """Reads AMQP types from a payload, raising FrameError past its end."""

    __slots__ = ("data", "depth", "pos")

    def __init__(self, data: bytes, pos: int = 0) -> None:
        self.data = data
        self.pos = pos
        self.depth = 0

    def take(self, n: int) -> bytes:
        end = self.pos + n
        if end > len(self.data):
            raise FrameError("a method or table runs past the end of its frame")
        out = self.data[self.pos : end]
        self.pos = end
        return out

    def unpack(self, fmt: struct.Struct) -> tuple[Any, ...]:
        return fmt.unpack(self.take(fmt.size))

    def octet(self) -> int:
        return self.take(1)[0]

    def shortstr(self) -> str:
        return self.take(self.octet()).decode("utf-8", "replace")

    def longstr(self) -> bytes:
        (n,) = self.unpack(_LONG)
        return self.take(n)

    def table(self) -> dict[str, Any]:
        (n,) = self.unpack(_LONG)
        end = self.pos + n
        if end > len(self.data):
            raise FrameError("a field table runs past the end of its frame")
        self.nest()
        out: dict[str, Any] = {}
        while self.pos < end:
            key = self.shortstr()
            out[key] = self.field()
        if self.pos != end:
            raise FrameError("a field table's entries overrun its size")
        self.depth -= 1
        return out

    def nest(self) -> None:
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise FrameError(f"tables or arrays nested over {MAX_NESTING} deep")

    def field(self) -> Any:
        kind = self.take(1)
        reader = _FIELD_READERS.get(kind)
        if reader is None:
            raise FrameError(f"unknown field type {kind!r} in a table")
        return reader(self)


_LONG = struct.Struct("!I")
_SIGNED_LONG = struct.Struct("!i")


def _array(cursor: _Cursor) -> list[Any]:
    (n,) = cursor.unpack(_LONG)
    end = cursor.pos + n
    if end > len(cursor.data):
        raise FrameError("a field array runs past the end of its frame")
    cursor.nest()
    items = []
    while cursor.pos < end:
        items.append(cursor.field())
    if cursor.pos != end:
        raise FrameError("a field array's items overrun its size")
    cursor.depth -= 1
    return items


def _decimal(cursor: _Cursor) -> Decimal:
    scale = cursor.octet()
    (value,) = cursor.unpack(_SIGNED_LONG)
    return Decimal(value).scaleb(-scale)


_LONGLONG = struct.Struct("!Q")


def _timestamp(cursor: _Cursor) -> datetime:
    (seconds,) = cursor.unpack(_LONGLONG)
    try:
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, ValueError, OSError) as e:
        raise FrameError(f"a timestamp out of range: {seconds}") from e


def _reader(fmt: str) -> Callable[[_Cursor], Any]:
    packed = struct.Struct(fmt)
    return lambda cursor: cursor.unpack(packed)[0]


_FIELD_READERS: dict[bytes, Callable[[_Cursor], Any]] = {
    b"t": lambda c: c.octet() != 0,
    b"b": _reader("!b"),
    b"B": _reader("!B"),
    b"s": _reader("!h"),
    b"u": _reader("!H"),
    b"I": _reader("!i"),
    b"i": _reader("!I"),
    b"l": _reader("!q"),
    b"L": _reader("!Q"),
    b"f": _reader("!f"),
    b"d": _reader("!d"),
    b"D": _decimal,
    b"S": lambda c: c.longstr().decode("utf-8", "replace"),
    b"x": lambda c: c.longstr(),
    b"A": _array,
    b"T": _timestamp,
    b"F": lambda c: c.table(),
    b"V": lambda c: None,
}

_SCALARS: Final = {
    "o": struct.Struct("!B"),
    "s": struct.Struct("!H"),
    "l": struct.Struct("!I"),
    "L": struct.Struct("!Q"),
}


def decode_method(payload: bytes) -> Method:
    """A method frame's payload as :class:`Method` (FrameError if malformed)."""
    if len(payload) < 4:
        raise FrameError("a method frame shorter than its ids")
    ids = _IDS.unpack_from(payload)
    spec = METHODS.get(ids)
    if spec is None:
        raise FrameError(f"unknown method {ids[0]}.{ids[1]}")
    name, names, fmt = spec
    cursor = _Cursor(payload, 4)
    args: dict[str, Any] = {}
    bit = 8
    octet = 0
    for arg, letter in zip(names, fmt, strict=True):
        if letter == "b":
            if bit == 8:
                octet = cursor.octet()
                bit = 0
            args[arg] = bool(octet & (1 << bit))
            bit += 1
            continue
        bit = 8
        if letter == "n":
            args[arg] = cursor.shortstr()
        elif letter == "S":
            args[arg] = cursor.longstr()
        elif letter == "T":
            args[arg] = cursor.table()
        else:
            args[arg] = cursor.unpack(_SCALARS[letter])[0]
    return Method(ids, name, args)


def decode_content_header(payload: bytes) -> tuple[int, bytes]:
    """A content header's body size and its raw property flags and list."""
    if len(payload) < _CONTENT_HEADER.size:
        raise FrameError("a content header shorter than its fixed part")
    _class_id, _weight, size, _flags = _CONTENT_HEADER.unpack_from(payload)
    return size, payload[12:]


#: Basic properties in flag order (bit 15 first) with their types.
_PROPERTIES: Final = (
    ("content_type", "n"),
    ("content_encoding", "n"),
    ("headers", "T"),
    ("delivery_mode", "o"),
    ("priority", "o"),
    ("correlation_id", "n"),
    ("reply_to", "n"),
    ("expiration", "n"),
    ("message_id", "n"),
    ("timestamp", "L"),
    ("type", "n"),
    ("user_id", "n"),
    ("app_id", "n"),
    ("cluster_id", "n"),
)


def decode_properties(raw: bytes) -> dict[str, Any]:
    """The basic properties present in a content header's property part."""
    cursor = _Cursor(raw)
    (flags,) = cursor.unpack(_SCALARS["s"])
    out: dict[str, Any] = {}
    for i, (name, letter) in enumerate(_PROPERTIES):
        if not flags & (1 << (15 - i)):
            continue
        if letter == "n":
            out[name] = cursor.shortstr()
        elif letter == "T":
            out[name] = cursor.table()
        else:
            out[name] = cursor.unpack(_SCALARS[letter])[0]
    return out


class FrameReader:
    """Splits a byte stream into frames, whatever its chunking.

    :meth:`feed` returns the whole frames received so far as
    ``(type, channel, payload)``; a partial frame waits for more bytes.  A
    frame larger than ``frame_max`` or not ending in 0xCE is a
    :class:`FrameError`.
    """

    def __init__(self, frame_max: int = 131072) -> None:
        self.frame_max = frame_max
        self._buffer = b""

    def feed(self, data: bytes) -> list[tuple[int, int, bytes]]:
        buffer = self._buffer + data if self._buffer else data
        frames: list[tuple[int, int, bytes]] = []
        pos = 0
        end = len(buffer)
        unpack = _FRAME_START.unpack_from
        while end - pos >= 8:
            kind, channel, size = unpack(buffer, pos)
            if size > self.frame_max - 8:  # frame-max counts the whole frame
                raise FrameError(f"a frame of {size} bytes (limit {self.frame_max})")
            stop = pos + 7 + size
            if stop >= end:
                break
            if buffer[stop] != FRAME_END:
                raise FrameError("a frame does not end with 0xCE")
            frames.append((kind, channel, buffer[pos + 7 : stop]))
            pos = stop + 1
        self._buffer = buffer[pos:] if pos < end else b""
        return frames
