"""Vumi wire-format messages and their Junebug API views.

Messages travel over AMQP as vumi JSON (``message_version`` ``20110921``), so that
vumi-compatible transports and applications interoperate.  They are kept as plain
dicts here: unknown fields survive a round trip unchanged.  The functions below
build each kind of message and translate between the vumi form and the JSON the
HTTP API shows (the "API view").
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final, NotRequired, TypedDict, cast

MESSAGE_VERSION: Final = "20110921"
VUMI_DATE_FORMAT: Final = "%Y-%m-%d %H:%M:%S.%f"

#: A vumi message of a kind not known yet, as it came off the wire.
Message = dict[str, Any]
#: Any vumi message, only read: what serialising, storing or publishing takes.
AnyMessage = Mapping[str, Any]


class _Envelope(TypedDict):
    """The fields every vumi message has (see :func:`user_message`)."""

    message_type: str
    message_version: str
    timestamp: str
    transport_name: str | None
    transport_metadata: dict[str, Any]
    helper_metadata: dict[str, Any]
    routing_metadata: dict[str, Any]


class UserMessage(_Envelope):
    """A vumi ``user_message``: an inbound (MO) or outbound (MT) message.

    A TypedDict, so still a plain dict on the wire: fields other than these
    (``continue_session`` from a Junebug send, a sender's own) survive."""

    message_id: str
    to_addr: str | None
    from_addr: str | None
    to_addr_type: str | None
    from_addr_type: str | None
    group: str | None
    provider: str | None
    in_reply_to: str | None
    session_event: str | None
    content: str | None
    transport_type: str | None
    continue_session: NotRequired[bool | None]


class Event(_Envelope):
    """A vumi ``event``: an ``ack``, a ``nack`` or a ``delivery_report`` of
    the user message ``user_message_id``; each kind has its own field."""

    event_id: str
    event_type: str
    user_message_id: str | None
    sent_message_id: NotRequired[str | None]
    nack_reason: NotRequired[str]
    delivery_status: NotRequired[str]


class StatusEvent(_Envelope):
    """A vumi ``status_event``: the state of one component of a channel."""

    component: str
    status: str
    type: str
    message: str
    details: dict[str, Any]
    reasons: list[Any]


SESSION_NEW: Final = "new"
SESSION_RESUME: Final = "resume"
SESSION_CLOSE: Final = "close"

EVENT_TYPE_NAMES: Final = {
    "ack": "submitted",
    "nack": "rejected",
}
DELIVERY_STATUS_NAMES: Final = {
    "pending": "delivery_pending",
    "failed": "delivery_failed",
    "delivered": "delivery_succeeded",
}
#: The rate labels counted for each API event type.
EVENT_RATE_LABELS: Final = (
    "submitted",
    "rejected",
    "delivery_succeeded",
    "delivery_failed",
    "delivery_pending",
)


#: Ids come from a generator of our own, seeded from the OS and reseeded in
#: a forked child: ``uuid4()`` asks the kernel for 16 random bytes each time
#: (a system call, about five times the cost), and ids need to be unique, not
#: secret.  The module's shared generator is not used: tests may seed it.
_ids = random.Random()
os.register_at_fork(after_in_child=_ids.seed)
#: Clears the version and variant bits of a 128-bit number, then sets them
#: for a version 4 (random) UUID.
_UUID4_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))
_UUID4_SET = (0x4000 << 64) | (0x8000 << 48)


def generate_id() -> str:
    """Return a new message or event id: a random (version 4) UUID as 32 hex
    digits, as vumi uses."""
    return "%032x" % (_ids.getrandbits(128) & _UUID4_CLEAR | _UUID4_SET)


def format_timestamp(when: datetime) -> str:
    """Format a UTC datetime the way vumi does (``VUMI_DATE_FORMAT``)."""
    return when.replace(tzinfo=None).isoformat(" ", "microseconds")


def now_timestamp(now: float | None = None) -> str:
    """Return the current (or given epoch) time in vumi's format."""
    moment = datetime.now(UTC) if now is None else datetime.fromtimestamp(now, UTC)
    return format_timestamp(moment)


def parse_timestamp(value: str) -> datetime:
    """Parse a vumi timestamp (fraction optional) into an aware UTC datetime."""
    for fmt in (VUMI_DATE_FORMAT, "%Y-%m-%d %H:%M:%S"):
        try:
            return datetime.strptime(value, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    raise ValueError(f"Not a vumi timestamp: {value!r}")


def user_message(
    *,
    to_addr: str | None,
    from_addr: str | None,
    transport_name: str | None,
    content: str | None = None,
    transport_type: str | None = None,
    session_event: str | None = None,
    group: str | None = None,
    in_reply_to: str | None = None,
    provider: str | None = None,
    message_id: str | None = None,
    helper_metadata: dict[str, Any] | None = None,
    transport_metadata: dict[str, Any] | None = None,
) -> UserMessage:
    """Build a vumi ``user_message`` with every field vumi always sends."""
    # Written out, not spread from one envelope: mypy cannot tell a spread
    # dict has none of the optional keys.
    msg: UserMessage = {
        "message_type": "user_message",
        "message_version": MESSAGE_VERSION,
        "timestamp": now_timestamp(),
        "transport_name": transport_name,
        "transport_metadata": {},
        "helper_metadata": {},
        "routing_metadata": {},
        "message_id": message_id or generate_id(),
        "to_addr": to_addr,
        "from_addr": from_addr,
        "to_addr_type": None,
        "from_addr_type": None,
        "group": group,
        "provider": provider,
        "in_reply_to": in_reply_to,
        "session_event": session_event,
        "content": content,
        "transport_type": transport_type,
    }
    if helper_metadata:
        msg["helper_metadata"] = dict(helper_metadata)
    if transport_metadata:
        msg["transport_metadata"] = dict(transport_metadata)
    return msg


def _event(
    event_type: str, user_message_id: str | None, transport_name: str | None
) -> Event:
    return {
        "message_type": "event",
        "message_version": MESSAGE_VERSION,
        "timestamp": now_timestamp(),
        "transport_name": transport_name,
        "transport_metadata": {},
        "helper_metadata": {},
        "routing_metadata": {},
        "event_id": generate_id(),
        "event_type": event_type,
        "user_message_id": user_message_id,
    }


def ack(
    user_message_id: str, sent_message_id: str | None, transport_name: str | None
) -> Event:
    """An ``ack``: the transport handed the message to its provider."""
    msg = _event("ack", user_message_id, transport_name)
    msg["sent_message_id"] = sent_message_id
    return msg


def nack(user_message_id: str, reason: str, transport_name: str | None) -> Event:
    """A ``nack``: the transport could not send the message."""
    msg = _event("nack", user_message_id, transport_name)
    msg["nack_reason"] = reason
    return msg


def delivery_report(
    user_message_id: str, status: str, transport_name: str | None
) -> Event:
    """A ``delivery_report`` with ``delivery_status`` pending/failed/delivered."""
    msg = _event("delivery_report", user_message_id, transport_name)
    msg["delivery_status"] = status
    return msg


def status_event(
    *,
    component: str,
    status: str,
    type: str,  # noqa: A002 - the wire name
    message: str,
    transport_name: str | None,
    details: dict[str, Any] | None = None,
) -> StatusEvent:
    """A vumi ``status_event`` (ok/degraded/down) for one component."""
    return {
        "message_type": "status_event",
        "message_version": MESSAGE_VERSION,
        "timestamp": now_timestamp(),
        "transport_name": transport_name,
        "transport_metadata": {},
        "helper_metadata": {},
        "routing_metadata": {},
        "component": component,
        "status": status,
        "type": type,
        "message": message,
        "details": dict(details or {}),
        "reasons": [],
    }


def reply_to(
    inbound: AnyMessage,
    content: str | None,
    *,
    continue_session: bool = True,
    session_event: str | None = None,
    helper_metadata: dict[str, Any] | None = None,
) -> UserMessage:
    """Build the reply to an inbound message, with vumi's reply semantics."""
    if session_event is None and not continue_session:
        session_event = SESSION_CLOSE
    msg = user_message(
        to_addr=inbound.get("from_addr"),
        from_addr=inbound.get("to_addr"),
        group=inbound.get("group"),
        in_reply_to=inbound.get("message_id"),
        content=content,
        session_event=session_event,
        transport_name=inbound.get("transport_name"),
        transport_type=inbound.get("transport_type"),
        provider=inbound.get("provider"),
        helper_metadata=helper_metadata,
        transport_metadata=inbound.get("transport_metadata") or {},
    )
    msg["to_addr_type"] = inbound.get("from_addr_type")
    msg["from_addr_type"] = inbound.get("to_addr_type")
    msg["routing_metadata"] = {"endpoint_name": "default"}
    return msg


def as_user_message(msg: Message) -> UserMessage:
    """Treat a message read off an outbound queue as the user message it was
    published as.  Nothing is checked (a transport copes with what a sender
    left out, as it always has); this only names the kind."""
    return cast("UserMessage", msg)


def channel_data_of(msg: AnyMessage) -> dict[str, Any]:
    """The API ``channel_data`` of a vumi message."""
    data = dict(msg.get("helper_metadata") or {})
    if msg.get("session_event") is not None:
        data["session_event"] = msg["session_event"]
    if msg.get("continue_session") is not None:
        data["continue_session"] = msg["continue_session"]
    return data


def api_message_view(msg: AnyMessage) -> dict[str, Any]:
    """The API view of a vumi user message (MO posts and send responses)."""
    return {
        "to": msg.get("to_addr"),
        "from": msg.get("from_addr"),
        "group": msg.get("group"),
        "message_id": msg.get("message_id"),
        "channel_id": msg.get("transport_name"),
        "timestamp": msg.get("timestamp"),
        "reply_to": msg.get("in_reply_to"),
        "content": msg.get("content"),
        "channel_data": channel_data_of(msg),
    }


def api_event_type(event: AnyMessage) -> str | None:
    """The Junebug event type of a vumi event, or None if it has none."""
    event_type = event.get("event_type")
    if event_type in EVENT_TYPE_NAMES:
        return EVENT_TYPE_NAMES[event_type]
    if event_type == "delivery_report":
        return DELIVERY_STATUS_NAMES.get(event.get("delivery_status") or "")
    return None


def api_event_view(event: AnyMessage, channel_id: str | None = None) -> dict[str, Any]:
    """The API view of a vumi event (event_url posts and message status)."""
    event_type = api_event_type(event)
    details: dict[str, Any] = {}
    if event_type == "rejected":
        details["reason"] = event.get("nack_reason")
    return {
        "event_type": event_type,
        "message_id": event.get("user_message_id"),
        "channel_id": channel_id or event.get("transport_name"),
        "timestamp": event.get("timestamp"),
        "event_details": details,
    }


def api_status_view(
    status: AnyMessage, channel_id: str | None = None
) -> dict[str, Any]:
    """The API view of a vumi status event (status_url posts and components)."""
    return {
        "channel_id": channel_id or status.get("transport_name"),
        "component": status.get("component"),
        "status": status.get("status"),
        "type": status.get("type"),
        "message": status.get("message"),
        "details": status.get("details") or {},
    }


def split_channel_data(
    channel_data: dict[str, Any] | None,
) -> tuple[dict[str, Any], str | None, bool | None]:
    """Split API channel_data into helper_metadata, session_event, continue_session."""
    data = dict(channel_data or {})
    session_event = data.pop("session_event", None)
    continue_session = data.pop("continue_session", None)
    return data, session_event, continue_session


#: Built once: ``json.dumps`` with any option builds a new encoder per call.
_WIRE_ENCODER = json.JSONEncoder(separators=(",", ":"))


def to_json(msg: AnyMessage) -> bytes:
    """Serialise a message for the wire."""
    return _WIRE_ENCODER.encode(msg).encode("utf-8")


def from_json(data: bytes | str) -> Message:
    """Parse a message from the wire; raises ValueError if it is not an object."""
    value = json.loads(data)
    if not isinstance(value, dict):
        raise ValueError("a vumi message must be a JSON object")
    return value
