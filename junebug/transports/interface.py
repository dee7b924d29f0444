"""What a channel type implements, and what the channel gives it.

A transport speaks one protocol (telnet, SMPP, USSD over HTTP, ...).  The channel
builds it with a :class:`TransportContext` and its structured config, starts it,
and hands it each MT message consumed from ``<channel>.outbound``.  The transport
reports what happens through the context: MO messages, events (ack, nack,
delivery reports) and status events.  It never touches AMQP or the HTTP API.
The context also carries the transport's status reporter and background
tasks (see :mod:`junebug.transports.toolkit`); each transport gets its own
context.

A transport class declares:

- ``CONFIG_CLASS``: an attrs class; the channel's ``config`` object is
  structured into it when the channel is created or updated, so a bad config is
  a 400 naming the field, never a crash later.  Unknown keys are ignored, as
  vumi ignored them.
- ``TRANSPORT_TYPE``: the default vumi ``transport_type`` of its MO messages.
- ``__init__(context, config)``, ``start()``, ``stop()`` and
  ``handle_outbound(message)``.

The channel's rate limit (``rate_limit_count`` per ``rate_limit_window``)
costs one unit per message: the channel spends it before calling
``handle_outbound``.  A transport that counts what it really sends (SMPP: one
per ``submit_sm``, so a 3-part message costs 3) sets ``SPENDS_SEND_BUDGET =
True`` and awaits ``context.send_budget(n)`` before each send instead.

``handle_outbound`` returns once the transport has dealt with the message: it
has published an ``ack`` or ``nack`` (or, for windowed protocols, recorded it
as in flight).  If it raises, the message goes back to the queue.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, ClassVar, Protocol

import attrs
from twisted.logger import Logger

from junebug.messages import Event, StatusEvent, UserMessage
from junebug.metrics.families import ChannelMetrics, unregistered_channel
from junebug.reactors import TimeTCPReactor
from junebug.stores.backend import KeyValueBackend
from junebug.transports.toolkit import BackgroundTasks, StatusReporter

PublishInbound = Callable[[UserMessage], Awaitable[None]]
PublishEvent = Callable[[Event], Awaitable[None]]
PublishStatus = Callable[[StatusEvent], Awaitable[None]]
SendBudget = Callable[[int], Awaitable[None]]


async def unlimited(cost: int) -> None:
    """The send budget of a channel without a rate limit."""


@attrs.frozen
class TransportContext:
    """Everything a transport may use, injected by its channel.

    ``tasks`` and ``statuses`` are made with the context, so one context
    serves one transport.
    """

    channel_id: str
    reactor: TimeTCPReactor
    publish_inbound: PublishInbound
    publish_event: PublishEvent
    publish_status: PublishStatus
    store: KeyValueBackend
    log: Logger
    #: The channel's metric children (latencies a transport measures).
    metrics: ChannelMetrics = attrs.field(factory=unregistered_channel)
    #: Await ``send_budget(n)`` before sending ``n`` units (see the module
    #: doc); it may raise ``TemporaryFailure`` (the message goes back).
    send_budget: SendBudget = unlimited
    tasks: BackgroundTasks = attrs.field(
        default=attrs.Factory(
            lambda self: BackgroundTasks(self.reactor, self.log), takes_self=True
        )
    )
    statuses: StatusReporter = attrs.field(
        default=attrs.Factory(
            lambda self: StatusReporter(
                self.channel_id, self.publish_status, self.log, self.tasks
            ),
            takes_self=True,
        )
    )


class Transport(Protocol):
    """One running protocol endpoint of a channel."""

    CONFIG_CLASS: ClassVar[type[Any]]
    TRANSPORT_TYPE: ClassVar[str]

    async def start(self) -> None:
        """Start listening or connecting; return once the transport is usable."""

    async def stop(self) -> None:
        """Stop; always succeeds, even if start never finished."""

    async def handle_outbound(self, message: UserMessage) -> None:
        """Send one MT message and publish its ack or nack."""


class TransportClass(Protocol):
    """A transport class: its config class and its constructor."""

    CONFIG_CLASS: type[Any]
    TRANSPORT_TYPE: str

    def __call__(self, context: TransportContext, config: Any) -> Transport: ...
