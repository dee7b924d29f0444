"""Cancelling queued MT: one by id, or every one waiting (of a priority, or
older than a time).

A message is cancelled by claiming its fate ``cancelled``
(:meth:`~junebug.stores.messages.MessageStore.claim_fate`); only the claim that
wins publishes its ``nack`` (``nack_reason`` ``cancelled``) to ``<cid>.event``,
from where it reaches the message's ``event_url`` and its status like any
event.  A message whose fate is ``sent`` was handed to the transport: too late.

Cancelling all records a "cancel before" time per priority (read by the
channel's outbound handler, :mod:`junebug.channels.traffic`, for messages
already prefetched) and drains the queues now, through :meth:`Canceller.take`:
a cancelled message leaves its queue (so a paused channel's queue length goes
to 0 too); any other is published again to the tail of its queue, which keeps
the order within the priority as long as nothing else arrives meanwhile.
"""

from __future__ import annotations

from datetime import datetime

import attrs

from junebug.amqp import topology
from junebug.amqp.broker import Broker
from junebug.errors import MessageAlreadySent, OutboundMessageNotFound
from junebug.messages import Message, nack
from junebug.stores.messages import CANCELLED, SENT, MessageStore
from junebug.stores.traffic import TrafficState, TrafficStore

NACK_REASON = "cancelled"


@attrs.define
class Canceller:
    """Cancels queued MT of channels, from any process."""

    broker: Broker
    messages: MessageStore
    traffic: TrafficStore

    async def cancel(self, channel_id: str, message_id: str) -> bool:
        """Claim ``cancelled`` for a message; True if this call cancelled it
        (and published its ``nack``), False if it already had a fate."""
        if not await self.messages.claim_fate(channel_id, message_id, CANCELLED):
            return False
        event = nack(message_id, NACK_REASON, channel_id)
        event["sent_message_id"] = message_id
        await self.broker.publish(topology.event(channel_id), event)
        return True

    async def cancel_one(self, channel_id: str, message_id: str) -> bool:
        """Cancel a queued message; False if it was cancelled before.

        Raises :class:`OutboundMessageNotFound` for an id without an outbound
        record, :class:`MessageAlreadySent` once the transport has it.
        """
        record = await self.messages.load_outbound(channel_id, message_id)
        if record is None:
            raise OutboundMessageNotFound(
                f"Message with id {message_id} not found on channel {channel_id}"
            )
        if await self.cancel(channel_id, message_id):
            return True
        if await self.messages.load_fate(channel_id, message_id) == SENT:
            raise MessageAlreadySent(
                f"Message {message_id} was already sent: it cannot be cancelled"
            )
        return False

    async def cancel_queued(
        self, channel_id: str, priorities: tuple[int, ...], cutoff: datetime
    ) -> int:
        """Cancel the MT of ``priorities`` stamped before ``cutoff``; returns
        how many were cancelled from the queues now (messages a transport
        had prefetched are cancelled when they reach its handler)."""
        state = await self.traffic.cancel_before(channel_id, priorities, cutoff)
        queues = [topology.outbound_at(channel_id, p) for p in priorities]
        depths = await self.broker.queue_depths(queues)
        cancelled = 0
        for priority, queue in zip(priorities, queues, strict=True):
            waiting = depths.get(queue, 0)
            if not waiting:
                continue

            async def take(message: Message, priority: int = priority) -> None:
                nonlocal cancelled
                cancelled += await self.take(channel_id, priority, message, state)

            await self.broker.drain(queue, take, limit=waiting)
        return cancelled

    async def take(
        self, channel_id: str, priority: int, message: Message, state: TrafficState
    ) -> int:
        """Handle one message drained from a queue: 1 if it was cancelled now,
        else 0 (one cancelled before is dropped; any other goes back)."""
        message_id = str(message.get("message_id"))
        if state.cancels(priority, message.get("timestamp")):
            if await self.cancel(channel_id, message_id):
                return 1
            fate = await self.messages.load_fate(channel_id, message_id)
            if fate == CANCELLED:
                return 0
        await self.broker.publish(topology.outbound_at(channel_id, priority), message)
        return 0
