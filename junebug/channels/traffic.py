"""The last checks before a channel hands an MT to its transport.

Runs in the process that runs the channel's transport.  It reads the
channel's :class:`~junebug.stores.traffic.TrafficState` at most once every
:data:`STATE_MAX_AGE` seconds (or is told at once by the API of the same
process), so a pause or a "cancel all" asked through any process holds here
within that time.  For each message it then claims the fate ``sent``
(:meth:`~junebug.stores.messages.MessageStore.claim_fate`, one Redis round
trip): a message cancelled first is dropped, never sent.  "Sent" therefore
means: handed to the transport; a message requeued by the transport after
that (the SMSC was away) is still sent, later, and can no longer be cancelled.

While paused the channel stops consuming its outbound queues (they keep
their messages) and :class:`PauseWatch` reads the state every
:data:`PAUSE_POLL` seconds to resume when another process says so.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from twisted.internet.defer import ensureDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from junebug.channels.cancelling import Canceller
from junebug.errors import TemporaryFailure
from junebug.messages import Message
from junebug.stores.messages import CANCELLED, SENT, MessageStore
from junebug.stores.traffic import TrafficState, TrafficStore

#: Seconds a channel trusts the traffic state it read.
STATE_MAX_AGE = 1.0
#: Seconds between reads of the state while a channel is paused.
PAUSE_POLL = 1.0


class ChannelPaused(TemporaryFailure):
    """The channel is paused: the message goes back to its queue."""


class OutboundTraffic:
    """Pause and cancel checks of one channel's outbound handler."""

    def __init__(
        self,
        channel_id: str,
        store: TrafficStore,
        messages: MessageStore,
        canceller: Canceller,
        clock: IReactorTime,
    ) -> None:
        self.channel_id = channel_id
        self._store = store
        self._messages = messages
        self._canceller = canceller
        self._clock = clock
        self._state = TrafficState()
        self._read_at: float | None = None

    def note(self, state: TrafficState) -> None:
        """The state just written (by the API of this process)."""
        self._state = state
        self._read_at = self._clock.seconds()

    def forget(self) -> None:
        """Read the state again next time."""
        self._read_at = None

    async def state(self) -> TrafficState:
        """The state, read again if the one known is older than allowed."""
        now = self._clock.seconds()
        if self._read_at is None or now - self._read_at >= STATE_MAX_AGE:
            self.note(await self._store.load(self.channel_id))
        return self._state

    async def admit(self, priority: int, message: Message) -> bool:
        """True if ``message`` is to be sent now (its fate is claimed
        ``sent``); False if it is cancelled (drop it).  Raises
        :class:`ChannelPaused` while the channel is paused."""
        state = await self.state()
        if state.paused:
            raise ChannelPaused(f"channel {self.channel_id} is paused")
        message_id = str(message.get("message_id"))
        if state.cancels(priority, message.get("timestamp")):
            await self._canceller.cancel(self.channel_id, message_id)
            return False
        if await self._messages.claim_fate(self.channel_id, message_id, SENT):
            return True
        # Sent before (and requeued by the transport), or cancelled.
        fate = await self._messages.load_fate(self.channel_id, message_id)
        return fate != CANCELLED


class PauseWatch:
    """Calls ``resume`` once the stored state of a paused channel is no
    longer paused (polling it every :data:`PAUSE_POLL` seconds)."""

    log = Logger()

    def __init__(
        self,
        traffic: OutboundTraffic,
        clock: IReactorTime,
        resume: Callable[[], Awaitable[None]],
    ) -> None:
        self._traffic = traffic
        self._resume = resume
        self._loop = LoopingCall(lambda: ensureDeferred(self._check()))
        self._loop.clock = clock

    @property
    def running(self) -> bool:
        return self._loop.running

    def start(self) -> None:
        if not self._loop.running:
            self._loop.start(PAUSE_POLL, now=False).addErrback(
                lambda failure: self.log.failure("pause watch failed", failure)
            )

    def stop(self) -> None:
        if self._loop.running:
            self._loop.stop()

    async def _check(self) -> None:
        try:
            state = await self._traffic.state()
        except Exception:
            self.log.failure("Could not read the traffic state of a paused channel")
            return
        if not state.paused:
            self.stop()
            await self._resume()
