"""Callback URL templates: per-message variables in ``mo_url`` and ``event_url``.

A callback URL may name values of the message (or event) it delivers, in two
spellings: Kannel's (``%p``, ``%d``...) and a readable one (``{from}``,
``{dlr_type}``...).  Every value is URL-encoded (UTF-8, everything but
``A-Z a-z 0-9 - . _ ~`` percent-encoded), so it can go anywhere in a URL.

How a ``%`` is read, left to right:

1. ``%`` and two hex digits is a percent-encoded octet, kept as it is (so
   ``%20`` or ``%d9`` never become variables; to put a variable before a hex
   digit, use the braces: ``{dlr_type}1``);
2. ``%%`` is one literal ``%``;
3. ``%`` and a letter is a Kannel escape: substituted if Junebug has that
   value for this kind of URL (:data:`KANNEL_LETTERS`); any other letter is
   refused when the URL is given to the API (it would send a wrong URL), and
   kept literally, as Kannel does, in a URL that never went through the API;
4. any other ``%`` (before a non-letter, or at the end) is kept literally.

Braces are read as :mod:`junebug.transports.http.template` reads them:
``{name}`` is a variable, ``{{`` and ``}}`` are literal braces, a lone brace is
an error.  A URL without variables is posted exactly as written; it takes a
fast path with no per-message work.  Variables may not be in the scheme, host
or port (a message could choose where it is sent): the API refuses them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Final
from urllib.parse import quote

from junebug.errors import ApiUsageError
from junebug.messages import AnyMessage, api_event_type
from junebug.transports.http.template import BRACE_TOKEN

#: Variables of every callback URL.
COMMON: Final = frozenset(
    {
        "message_id",
        "channel_id",
        "to",
        "from",
        "to_intl",
        "from_intl",
        "timestamp",
        "time",
    }
)
#: Variables of ``mo_url`` (the MO message's own values).
MO_VARIABLES: Final = COMMON | {
    "content",
    "keyword",
    "next_word",
    "rest_words",
    "words",
}
#: Variables of ``event_url`` (the event's values and its message's).
EVENT_VARIABLES: Final = COMMON | {
    "event_id",
    "event_type",
    "delivery_status",
    "dlr_type",
    "smsc_id",
    "reason",
    "failure_code",
}

#: Kannel's escapes that Junebug fills, and the variable each one is.
KANNEL_LETTERS: Final = {
    "I": "message_id",
    "i": "channel_id",
    "p": "from",
    "P": "to",
    "q": "from_intl",
    "Q": "to_intl",
    "t": "time",
    "T": "timestamp",
    "b": "content",
    "k": "keyword",
    "s": "next_word",
    "r": "rest_words",
    "a": "words",
    "d": "dlr_type",
    "A": "reason",
    "F": "failure_code",
}
#: Kannel's escapes Junebug has no value for, and why it refuses them.
UNSUPPORTED_LETTERS: Final = {
    "S": "it puts message text into the URL without encoding it",
    "c": "message coding",
    "m": "message class",
    "M": "message waiting indicator",
    "C": "charset",
    "u": "UDH",
    "B": "billing id",
    "o": "account",
    "O": "DCS",
    "f": "originating SMSC",
    "n": "sendsms user",
}

#: Kannel's ``%d`` for each vumi event (delivery reports by their status).
DLR_TYPES: Final = {
    "ack": 8,
    "nack": 16,
    "delivered": 1,
    "failed": 2,
    "pending": 4,
}

_TOKEN = re.compile(
    r"%[0-9A-Fa-f]{2}|%%|%([A-Za-z])|"
    + BRACE_TOKEN.pattern.replace("(", "(?P<name>", 1)
)

#: A parsed template: literal text and ``(variable,)`` tuples, in order.
Parts = tuple[str | tuple[str], ...]


def _parse(url: str, known: frozenset[str] | None) -> Parts:
    """Split ``url`` into parts; ``known`` set means strict (raise on errors)."""
    parts: list[str | tuple[str]] = []
    literal: list[str] = []
    position = 0
    for match in _TOKEN.finditer(url):
        literal.append(url[position : match.start()])
        position = match.end()
        piece = match.group(0)
        name: str | None = None
        if piece == "%%":
            literal.append("%")
        elif piece in ("{{", "}}"):
            literal.append(piece[0])
        elif match.group(1) is not None:
            name = _kannel(match.group(1), piece, known)
            if name is None:
                literal.append(piece)
        elif match.group("name") is not None:
            name = match.group("name")
            if known is not None and name not in known:
                raise ApiUsageError(
                    f"unknown variable {{{name}}}, must be one of "
                    + ", ".join(f"{{{v}}}" for v in sorted(known))
                )
        elif piece in ("{", "}"):
            if known is not None:
                raise ApiUsageError(
                    f"unbalanced brace in {url!r} (write {{{{ or }}}} for a "
                    "literal brace, or %7B / %7D)"
                )
            literal.append(piece)
        else:
            literal.append(piece)  # a percent-encoded octet
        if name is not None:
            if literal:
                parts.append("".join(literal))
                literal = []
            parts.append((name,))
    literal.append(url[position:])
    text = "".join(literal)
    if text:
        parts.append(text)
    return tuple(parts)


def _kannel(letter: str, piece: str, known: frozenset[str] | None) -> str | None:
    name = KANNEL_LETTERS.get(letter)
    if known is None:
        return name
    if name is not None and name in known:
        return name
    if name is not None:
        raise ApiUsageError(f"{piece} ({{{name}}}) has no value in this URL")
    why = UNSUPPORTED_LETTERS.get(letter)
    if why is not None:
        raise ApiUsageError(f"{piece} is not supported: {why}")
    raise ApiUsageError(
        f"{piece} is not a URL template escape (write %25 for a literal %)"
    )


@lru_cache(maxsize=1024)
def _compiled(url: str) -> Parts | None:
    """The parts of ``url``, or None if it has no variables (post it as is)."""
    parts = _parse(url, None)
    if all(isinstance(part, str) for part in parts):
        return None
    return parts


def has_variables(url: str) -> bool:
    """Whether ``url`` names any variable (cheap for a URL without any)."""
    if "%" not in url and "{" not in url:
        return False
    return _compiled(url) is not None


def check(field: str, url: Any, known: frozenset[str]) -> None:
    """Raise ApiUsageError naming ``field`` if the template ``url`` is bad."""
    if not isinstance(url, str) or (
        "%" not in url and "{" not in url and "}" not in url
    ):
        return
    try:
        _parse(url, known)
        if any(not isinstance(part, str) for part in _parse(_origin(url), known)):
            raise ApiUsageError(
                "variables may only be in the path, query or fragment, not in "
                "the scheme, host or port"
            )
    except ApiUsageError as exc:
        raise ApiUsageError(f'"{field}": {exc}') from None


def _origin(url: str) -> str:
    """The part of ``url`` before its path: scheme, userinfo, host, port."""
    start = url.find("//")
    start = 0 if start < 0 else start + 2
    ends = [i for i in (url.find(c, start) for c in "/?#") if i >= 0]
    return url[: min(ends)] if ends else url


def check_mo_url(field: str, url: Any) -> None:
    """Check an ``mo_url`` template (raises ApiUsageError)."""
    check(field, url, MO_VARIABLES)


def check_event_url(field: str, url: Any) -> None:
    """Check an ``event_url`` template (raises ApiUsageError)."""
    check(field, url, EVENT_VARIABLES)


def render(url: str, values: Mapping[str, Any]) -> str:
    """``url`` with every variable replaced by its URL-encoded value.

    ``values`` maps variable names to values (None is empty); the word
    variables take them from ``values["words"]``, a list.
    """
    parts = _compiled(url) if ("%" in url or "{" in url) else None
    if parts is None:
        return url
    out: list[str] = []
    words: list[str] = list(values.get("words") or ())
    used = 1  # %s starts after the keyword and moves on at each use
    for part in parts:
        if isinstance(part, str):
            out.append(part)
            continue
        name = part[0]
        if name == "keyword":
            text = words[0] if words else ""
        elif name == "next_word":
            text = words[used] if used < len(words) else ""
            used += 1
        elif name == "rest_words":
            text = " ".join(words[used:])
        elif name == "words":
            text = " ".join(words)
        else:
            text = _text(values.get(name))
        out.append(quote(text, safe=""))
    return "".join(out)


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _intl(address: Any) -> Any:
    """Kannel's ``%q``: a leading ``00`` becomes ``+``."""
    if isinstance(address, str) and address.startswith("00"):
        return "+" + address[2:]
    return address


def _times(timestamp: Any) -> tuple[str, str]:
    """``(YYYY-MM-DD HH:MM, UNIX epoch)`` of a vumi timestamp (UTC)."""
    if not isinstance(timestamp, str):
        return "", ""
    try:
        when = datetime.fromisoformat(timestamp)
    except ValueError:
        return "", ""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.strftime("%Y-%m-%d %H:%M"), str(int(when.timestamp()))


def _common(
    message_id: Any, channel_id: str, to: Any, from_: Any, timestamp: Any
) -> dict[str, Any]:
    time, epoch = _times(timestamp)
    return {
        "message_id": message_id,
        "channel_id": channel_id,
        "to": to,
        "from": from_,
        "to_intl": _intl(to),
        "from_intl": _intl(from_),
        "time": time,
        "timestamp": epoch,
    }


def mo_values(message: AnyMessage, channel_id: str) -> dict[str, Any]:
    """The variables of an ``mo_url`` for one MO message."""
    values = _common(
        message.get("message_id"),
        channel_id,
        message.get("to_addr"),
        message.get("from_addr"),
        message.get("timestamp"),
    )
    content = message.get("content")
    values["content"] = content
    values["words"] = content.split() if isinstance(content, str) else []
    return values


def dlr_type(event: AnyMessage) -> int | None:
    """Kannel's ``%d`` (DLR type) of a vumi event."""
    event_type = event.get("event_type")
    if event_type == "delivery_report":
        return DLR_TYPES.get(event.get("delivery_status") or "")
    if event_type in ("ack", "nack"):
        return DLR_TYPES[event_type]
    return None


def event_values(
    event: AnyMessage, record: Mapping[str, Any], channel_id: str
) -> dict[str, Any]:
    """The variables of an ``event_url`` for one event of a stored message."""
    values = _common(
        event.get("user_message_id"),
        channel_id,
        record.get("to"),
        record.get("from"),
        event.get("timestamp"),
    )
    metadata = event.get("transport_metadata") or {}
    reason = event.get("nack_reason")
    if reason is None and isinstance(metadata, Mapping):
        reason = metadata.get("smpp_delivery_status")
    values.update(
        {
            "event_id": event.get("event_id"),
            "event_type": api_event_type(event),
            "delivery_status": event.get("delivery_status"),
            "dlr_type": dlr_type(event),
            "smsc_id": event.get("sent_message_id"),
            "reason": reason,
            "failure_code": _failure_code(metadata),
        }
    )
    return values


def _failure_code(metadata: object) -> Any:
    """Kannel's ``%F``: the SMSC's error code, if any (a receipt's ``err:``
    field, or a refused ``submit_sm``'s command status)."""
    if not isinstance(metadata, Mapping):
        return None
    code = metadata.get("smpp_error")
    return metadata.get("smpp_command_status") if code is None else code
