"""Accepting an MT message from the API: checks, the outbound record, publishing.

The order of checks is the original's (so the same request gets the same
error): destination, ``to``/``reply_to``, the replied-to message, the content,
the character limit.  The outbound record (with ``event_url``) is stored before
the message is published, so an early event always finds it.  A message is
accepted (201) only once the broker has confirmed it; a 503 means it was not
sent, a 504 that it was sent but not confirmed (it may still be delivered).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import attrs
from twisted.logger import Logger

from junebug.amqp import topology
from junebug.amqp.broker import Broker
from junebug.changes import undo_quietly
from junebug.channels.properties import has_destination
from junebug.errors import (
    AmqpConnectionError,
    AmqpOutcomeUnknown,
    ApiUsageError,
    BrokerError,
    MessageNotFound,
    MessageTooLong,
    PublishOutcomeUnknown,
)
from junebug.http.url_templates import check_event_url
from junebug.http.urls import check_callback_urls
from junebug.messages import (
    SESSION_CLOSE,
    UserMessage,
    api_message_view,
    reply_to,
    split_channel_data,
    user_message,
)
from junebug.stores.messages import MessageStore
from junebug.stores.rates import RateStore

_log = Logger()

#: Request fields kept in the outbound record beside the API view.
RECORD_EXTRAS = ("event_url", "event_auth_token", "priority")


def message_priority(body: Mapping[str, Any]) -> int:
    """A request's ``priority``: as given (validated 1 to 5 by the schema),
    else 5 for a reply and 1 for any other message."""
    given = body.get("priority")
    if given is None:
        return topology.PRIORITIES[-1] if "reply_to" in body else 1
    return int(given)


def _closes_session(msg: UserMessage) -> bool:
    return (
        msg.get("session_event") == SESSION_CLOSE
        or msg.get("continue_session") is False
    )


@attrs.define
class MessageSender:
    """Turns validated API requests into published vumi messages."""

    #: Whether a reply keeps its inbound message's ``transport_name`` (the
    #: message API, whose transport may sit behind a router that routes
    #: replies by it); a channel's replies name the channel.
    replies_keep_transport_name: ClassVar[bool] = False
    #: Whether a message goes to the queue of its priority (a channel's);
    #: otherwise always to ``<id>.outbound`` (the message API's connector,
    #: consumed by a vumi application that knows one queue).
    prioritised: ClassVar[bool] = True

    broker: Broker
    messages: MessageStore
    rates: RateStore
    allow_expired_replies: bool = False

    async def build(
        self,
        channel_id: str,
        body: dict[str, Any],
        inbound_owners: tuple[str, ...] = (),
    ) -> UserMessage:
        """Check a request and build its vumi message (without sending it)."""
        if "to" not in body and "reply_to" not in body:
            raise ApiUsageError('Either "to" or "reply_to" must be specified')
        helper_metadata, session_event, continue_session = split_channel_data(
            body.get("channel_data")
        )
        content = body.get("content")
        msg: UserMessage | None = None
        if "reply_to" in body:
            inbound = None
            for owner in (*inbound_owners, channel_id):
                inbound = await self.messages.load_inbound(owner, body["reply_to"])
                if inbound is not None:
                    break
            if inbound is not None:
                msg = reply_to(
                    inbound,
                    content,
                    continue_session=continue_session is not False,
                    session_event=session_event,
                    helper_metadata=helper_metadata,
                )
            elif not (self.allow_expired_replies and body.get("to")):
                raise MessageNotFound(
                    f"Inbound message with id {body['reply_to']} not found"
                )
        if msg is None:
            msg = user_message(
                to_addr=body.get("to"),
                from_addr=body.get("from"),
                group=body.get("group"),
                content=content,
                transport_name=channel_id,
                session_event=session_event,
                helper_metadata=helper_metadata,
            )
        if continue_session is not None:
            msg["continue_session"] = continue_session
        if not (self.replies_keep_transport_name and msg.get("in_reply_to")):
            msg["transport_name"] = channel_id
        if content is None and not _closes_session(msg):
            raise ApiUsageError(
                '"content" may only be null for a message that closes a session'
            )
        return msg

    def check_length(self, msg: UserMessage, limit: Any) -> None:
        content = msg.get("content")
        if isinstance(limit, int) and content is not None and len(content) > limit:
            raise MessageTooLong(
                f"Message content {content!r} is of length {len(content)}, "
                f"which is greater than the character limit of {limit}"
            )

    async def send(
        self,
        channel_id: str,
        properties: Mapping[str, Any],
        body: dict[str, Any],
        *,
        require_destination: bool = True,
        inbound_owners: tuple[str, ...] = (),
        record_owners: tuple[str, ...] = (),
        record_extras: dict[str, Any] | None = None,
        on_publish: Callable[[UserMessage], None] | None = None,
    ) -> dict[str, Any]:
        """Validate, record and publish one MT message; return its API view.

        The outbound record is stored under the channel and under every id of
        ``record_owners`` (e.g. the router destination sending it), with
        ``record_extras`` added, before the message is published.
        ``on_publish`` is called with the message just before it is handed to
        the broker (from then on, it may be sent even if this fails).
        """
        if require_destination and not has_destination(properties):
            raise ApiUsageError('This channel has no "mo_url" or "amqp_queue"')
        check_callback_urls(body, ("event_url",))
        msg = await self.build(channel_id, body, inbound_owners)
        self.check_length(msg, properties.get("character_limit"))
        check_event_url("event_url", body.get("event_url"))
        view = api_message_view(msg)
        record = {**view}
        for key in RECORD_EXTRAS:
            if key in body:
                record[key] = body[key]
        priority = 1
        if self.prioritised:
            priority = record["priority"] = message_priority(body)
        record.update(record_extras or {})
        stored: list[str] = []
        try:
            for owner in (channel_id, *record_owners):
                await self.messages.store_outbound(owner, msg["message_id"], record)
                stored.append(owner)
        except Exception:
            await self._forget(stored, msg["message_id"])
            raise
        if on_publish is not None:
            on_publish(msg)
        try:
            await self.broker.publish(topology.outbound_at(channel_id, priority), msg)
        except PublishOutcomeUnknown as exc:
            raise AmqpOutcomeUnknown(
                "Message sent to AMQP but not confirmed: it may still be"
                " delivered; do not resend it blindly."
            ) from exc
        except BrokerError as exc:
            # Refused: no client will ever ask for this id.
            await self._forget(stored, msg["message_id"])
            raise AmqpConnectionError(
                "Message not sent, AMQP connection error."
            ) from exc
        await self.rates.increment(channel_id, "outbound")
        return view

    async def _forget(self, owners: list[str], message_id: str) -> None:
        """Delete the records of a refused message (they expire anyway)."""
        for owner in owners:
            await undo_quietly(
                _log,
                "forget a refused message's record",
                self.messages.forget_outbound(owner, message_id),
            )
