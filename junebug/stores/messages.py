"""Short-lived message state: inbound messages (for replies) and outbound records.

``<id>:inbound_messages:<mid>`` holds field ``message`` (vumi JSON) for
``inbound_message_ttl``; ``<id>:outbound_messages:<mid>`` holds field ``message``
(the API view plus ``event_url``/``event_auth_token``) and one field per event
(keyed by event id) for ``outbound_message_ttl``.  Every write and read refreshes
the TTL, as the original did.

Field ``fate`` of an outbound record says what became of a queued MT:
``sent`` (handed to the transport) or ``cancelled``; whichever is claimed first
(``HSETNX``) wins, so a message is never both sent and cancelled.
"""

from __future__ import annotations

import json
from typing import Any

from junebug.messages import AnyMessage, Message, from_json, to_json
from junebug.stores import keys
from junebug.stores.backend import KeyValueBackend

MESSAGE_FIELD = "message"
FATE_FIELD = "fate"
SENT = "sent"
CANCELLED = "cancelled"


class MessageStore:
    """Inbound and outbound message records of one channel or destination."""

    def __init__(
        self, backend: KeyValueBackend, inbound_ttl: int, outbound_ttl: int
    ) -> None:
        self._backend = backend
        self.inbound_ttl = inbound_ttl
        self.outbound_ttl = outbound_ttl

    async def store_inbound(self, owner_id: str, message: AnyMessage) -> None:
        await self._backend.hset(
            keys.inbound_message(owner_id, message["message_id"]),
            {MESSAGE_FIELD: to_json(message).decode()},
            ttl=self.inbound_ttl,
        )

    async def load_inbound(self, owner_id: str, message_id: str) -> Message | None:
        raw = await self._backend.hget(
            keys.inbound_message(owner_id, message_id),
            MESSAGE_FIELD,
            ttl=self.inbound_ttl,
        )
        return None if raw is None else from_json(raw)

    async def store_outbound(
        self, owner_id: str, message_id: str, record: dict[str, Any]
    ) -> None:
        await self._backend.hset(
            keys.outbound_message(owner_id, message_id),
            {MESSAGE_FIELD: json.dumps(record)},
            ttl=self.outbound_ttl,
        )

    async def forget_outbound(self, owner_id: str, message_id: str) -> None:
        """Delete an outbound record (of a message that was refused)."""
        await self._backend.delete(keys.outbound_message(owner_id, message_id))

    async def load_outbound(
        self, owner_id: str, message_id: str
    ) -> dict[str, Any] | None:
        raw = await self._backend.hget(
            keys.outbound_message(owner_id, message_id),
            MESSAGE_FIELD,
            ttl=self.outbound_ttl,
        )
        return _outbound_record(raw)

    async def claim_fate(self, owner_id: str, message_id: str, fate: str) -> bool:
        """Record ``fate`` for an MT unless it has one; True if this call did
        (one round trip)."""
        key = keys.outbound_message(owner_id, message_id)
        return await self._backend.hsetnx(key, FATE_FIELD, fate, ttl=self.outbound_ttl)

    async def load_fate(self, owner_id: str, message_id: str) -> str | None:
        """The fate recorded for an MT, if any."""
        key = keys.outbound_message(owner_id, message_id)
        return await self._backend.hget(key, FATE_FIELD)

    async def known(self, owner_id: str, message_id: str) -> bool:
        """Whether an inbound or outbound record of the message is still kept
        (its TTL is not refreshed)."""
        for key in (
            keys.outbound_message(owner_id, message_id),
            keys.inbound_message(owner_id, message_id),
        ):
            if await self._backend.exists(key):
                return True
        return False

    async def store_event_and_load_outbound(
        self, owner_id: str, event: AnyMessage
    ) -> dict[str, Any] | None:
        """Store an event against its MT and return the MT's record (None if
        it is not kept), in one round trip."""
        raw = await self._backend.hset_then_get(
            keys.outbound_message(owner_id, event["user_message_id"]),
            {event["event_id"]: to_json(event).decode()},
            MESSAGE_FIELD,
            ttl=self.outbound_ttl,
        )
        return _outbound_record(raw)

    async def load_events(self, owner_id: str, message_id: str) -> list[Message]:
        """Every event stored for a message, oldest first."""
        fields = await self._backend.hgetall(
            keys.outbound_message(owner_id, message_id), ttl=self.outbound_ttl
        )
        events = [
            from_json(v)
            for k, v in fields.items()
            if k not in (MESSAGE_FIELD, FATE_FIELD)
        ]
        events.sort(key=lambda e: e.get("timestamp") or "")
        return events


def _outbound_record(raw: str | None) -> dict[str, Any] | None:
    """An outbound record's ``message`` field read back (None: not kept)."""
    if raw is None:
        return None
    record: dict[str, Any] = json.loads(raw)
    return record
