"""Sending through the message API: the channel send path, under one connector.

:class:`MessageApiSender` is the channels' :class:`MessageSender` (same request
checks, same errors, outbound record stored before publishing) with the
connector name in the place of a channel id, so messages are published to
``<connector>.outbound`` (whatever their ``priority``: one queue).  It adds
what vumi2's message API does for messages
that are not replies: ``default_from_addr`` fills a missing ``from``, a ``from``
is then required, and ``transport_type`` is set.  A reply keeps the
``transport_name`` of the message it answers, as vumi2's do (a router routes
replies back by it); the answer's ``channel_id`` is the connector name either way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from junebug.channels.sending import MessageSender
from junebug.errors import ApiUsageError
from junebug.messages import UserMessage
from junebug.stores.rates import RateStore


class NoRates(RateStore):
    """The message API counts nothing (it has no status endpoint to show rates)."""

    def __init__(self) -> None:
        """No backend: nothing is stored."""

    async def increment(self, owner_id: str, label: str) -> None:
        return None

    async def rate(self, owner_id: str, label: str) -> float | int:
        return 0


@attrs.define
class MessageApiSender(MessageSender):
    """A :class:`MessageSender` with vumi2's rules for non-reply messages."""

    replies_keep_transport_name = True
    prioritised = False

    transport_type: str = "sms"
    default_from_addr: str | None = None

    async def send(
        self,
        channel_id: str,
        properties: Mapping[str, Any],
        body: dict[str, Any],
        **options: Any,
    ) -> dict[str, Any]:
        view = await super().send(channel_id, properties, body, **options)
        view["channel_id"] = channel_id
        return view

    async def build(
        self,
        channel_id: str,
        body: dict[str, Any],
        inbound_owners: tuple[str, ...] = (),
    ) -> UserMessage:
        if body.get("from") is None and self.default_from_addr is not None:
            body = {**body, "from": self.default_from_addr}
        msg = await super().build(channel_id, body, inbound_owners)
        if msg.get("in_reply_to") is None:
            if msg.get("from_addr") is None:
                raise ApiUsageError(
                    '"from" must be specified for a message that is not a reply '
                    "(no default_from_addr is configured)"
                )
            msg["transport_type"] = self.transport_type
        return msg
