"""A :class:`TransportContext` that records what a transport publishes."""

from __future__ import annotations

from typing import TypeVar

from twisted.internet.defer import Deferred, DeferredQueue
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from junebug.messages import Event, StatusEvent, UserMessage
from junebug.reactors import TimeTCPReactor
from junebug.stores.backend import KeyValueBackend
from junebug.stores.memory import MemoryBackend
from junebug.transports.interface import TransportContext

_T = TypeVar("_T")


class PublishRecorder:
    """Collects inbound messages, events and statuses; each also has a queue.

    ``fail_inbound`` (``fail_events``) makes publishing an MO (an event) raise,
    as a broker that is down.
    """

    #: The namespace of the transport's logger.
    log_namespace = "junebug.testing"

    def __init__(
        self,
        reactor: TimeTCPReactor,
        channel_id: str = "chan-1",
        store: KeyValueBackend | None = None,
    ) -> None:
        self.reactor = reactor
        self.inbound: list[UserMessage] = []
        self.events: list[Event] = []
        self.statuses: list[StatusEvent] = []
        self.inbound_queue: DeferredQueue[UserMessage] = DeferredQueue()
        self.event_queue: DeferredQueue[Event] = DeferredQueue()
        self.status_queue: DeferredQueue[StatusEvent] = DeferredQueue()
        self.fail_inbound = False
        self.fail_events = False
        self.store: KeyValueBackend = store or MemoryBackend(reactor)
        self.context = TransportContext(
            channel_id=channel_id,
            reactor=reactor,
            publish_inbound=self._publish_inbound,
            publish_event=self._publish_event,
            publish_status=self._publish_status,
            store=self.store,
            log=Logger(namespace=self.log_namespace),
        )

    async def _publish_inbound(self, msg: UserMessage) -> None:
        if self.fail_inbound:
            raise RuntimeError("broker down")
        self.inbound.append(msg)
        self.inbound_queue.put(msg)

    async def _publish_event(self, msg: Event) -> None:
        if self.fail_events:
            raise RuntimeError("broker down")
        self.events.append(msg)
        self.event_queue.put(msg)

    async def _publish_status(self, msg: StatusEvent) -> None:
        self.statuses.append(msg)
        self.status_queue.put(msg)

    async def _next(
        self,
        queue: DeferredQueue[_T],
        timeout: float,
        clock: IReactorTime | None = None,
    ) -> _T:
        d: Deferred[_T] = queue.get()
        d.addTimeout(timeout, clock or self.reactor)
        return await d

    async def next_inbound(
        self, timeout: float = 10.0, clock: IReactorTime | None = None
    ) -> UserMessage:
        return await self._next(self.inbound_queue, timeout, clock)

    async def next_event(
        self, timeout: float = 10.0, clock: IReactorTime | None = None
    ) -> Event:
        return await self._next(self.event_queue, timeout, clock)

    async def next_status(
        self, timeout: float = 10.0, clock: IReactorTime | None = None
    ) -> StatusEvent:
        return await self._next(self.status_queue, timeout, clock)


class RecordingContext(PublishRecorder):
    """A :class:`PublishRecorder` that lists statuses by component."""

    def status_types(self) -> list[tuple[str, str, str]]:
        """``(component, status, type)`` of every status published so far."""
        return [(s["component"], s["status"], s["type"]) for s in self.statuses]
