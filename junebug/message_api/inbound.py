"""Inbound messages made fit for courier before the message API posts them.

vumi2 reads every inbound message into typed fields and writes it out again,
so what it POSTs always has a ``YYYY-MM-DD HH:MM:SS.ffffff`` UTC ``timestamp``
and a string (or ``null``) ``content``; courier refuses anything else, and the
message would be lost.  The message API forwards the JSON it consumed, so it
does the same repair here first:

- a ``timestamp`` in ISO 8601 (``T`` or a space, ``Z`` or an offset, any
  fraction) is rewritten in vumi's format, in UTC;
- a missing, ``null`` or unreadable ``timestamp`` becomes the time of arrival
  (an unreadable one is logged);
- a ``content`` that is neither a string nor ``null`` becomes its JSON text
  (``42`` → ``"42"``).

A message that needs none of it is returned as it is.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from junebug.messages import Message, format_timestamp, now_timestamp, parse_timestamp

log = Logger(namespace="junebug.message_api")


def vumi_timestamp(value: object) -> str | None:
    """``value`` in vumi's timestamp format, or None if it is not a time."""
    if not isinstance(value, str):
        return None
    try:
        parse_timestamp(value)
        return value
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if when.tzinfo is not None:
        when = when.astimezone(UTC)
    return format_timestamp(when)


def _courier_content(content: object) -> bool:
    return content is None or isinstance(content, str)


def normalise_inbound(message: Message, clock: IReactorTime) -> Message:
    """``message`` with the ``timestamp`` and ``content`` courier accepts."""
    timestamp = message.get("timestamp")
    fixed = vumi_timestamp(timestamp)
    content = message.get("content")
    if fixed is not None and fixed == timestamp and _courier_content(content):
        return message
    message = dict(message)
    if fixed is None:
        if timestamp is not None:
            log.warn(
                "Inbound message {message_id} has an unreadable timestamp "
                "{timestamp!r}: posted with its time of arrival",
                message_id=message.get("message_id"),
                timestamp=timestamp,
            )
        fixed = now_timestamp(clock.seconds())
    message["timestamp"] = fixed
    if not _courier_content(content):
        message["content"] = json.dumps(content)
    return message
