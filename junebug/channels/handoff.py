"""The short way for what a transport receives: straight to the channel's
forwarder, in the process that runs both.

Without it an event (an ack, a nack, a delivery report) or an MO message
costs a confirmed publish to ``<cid>.event`` or ``<cid>.inbound`` and a
delivery to whichever process consumes it.  The owner of a channel runs its
forwarder too (forwarding runs everywhere), so it can hand the message over
in memory: :meth:`HandOff.hand_on` returns True once the forwarder has taken
it, that is stored it and POSTed it to ``event_url`` or ``mo_url`` (or queued
the POST's retry, which is durable).  The transport acknowledges what the
message came from (the MT's delivery from RabbitMQ, the SMSC's
``deliver_sm``) only after that, exactly as it waits for a publish's confirm
on the long way: a process killed before then leaves the MT unacknowledged or
the ``deliver_sm`` unanswered, and they come again.

The message takes the long way (the caller publishes it) when:

- the hand-off failed (Redis away, a retry that could not be queued);
- as many hand-offs of the channel as :data:`MOST_IN_FLIGHT` are under way
  (a burst, or a slow receiver): the rest go by the queue at once;
- one took longer than ``timeout`` seconds: the message is published at
  once, and the short way stays off for :data:`COOLDOWN` seconds.  The slow
  hand-off still finishes, so its message may be POSTed twice (at-least-once,
  as a redelivery would), at most the hand-offs then under way;
- hand-offs are slow on average (a moving mean above :data:`SLOW_SHARE` of
  ``timeout``): the short way stays off for :data:`COOLDOWN` seconds too, so
  a receiver that answers in 100 ms does not hold every ``deliver_sm_resp``
  that long;
- ``timeout`` is 0 (``handoff_timeout: 0`` turns the short way off).

Measured on the bench's SMPP load (``python -m bench smpp``, 2026-12-03), an
event's hand-off took 6 ms at the median and 38 ms at the 99th percentile
with ``jb`` at full load; with ``python -m bench kannel`` the short way
carried a quarter more MT per second for a tenth less CPU per MT in ``jb``
and a third of RabbitMQ's (docs/performance.md).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, cast

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from junebug.messages import AnyMessage, Message
from junebug.metrics.families import JunebugMetrics

#: Seconds a hand-off may take before the message is published instead.
DEFAULT_TIMEOUT = 0.25
#: Seconds the short way stays off after hand-offs were slow.
COOLDOWN = 30.0
#: Hand-offs of one kind under way at once; past them messages are published.
MOST_IN_FLIGHT = 32
#: The share of ``timeout`` the moving mean of hand-off times may reach.
SLOW_SHARE = 0.2
#: The weight of the newest hand-off time in that mean.
MEAN_WEIGHT = 0.1


class HandOff:
    """Hands one channel's events (or MO) to its forwarder while that is quick."""

    def __init__(
        self,
        handle: Callable[[Message], Coroutine[Any, Any, None]],
        reactor: IReactorTime,
        log: Logger,
        timeout: float,
        *,
        kind: str = "event",
        metrics: JunebugMetrics | None = None,
        most_in_flight: int = MOST_IN_FLIGHT,
        cooldown: float = COOLDOWN,
    ) -> None:
        self._handle = handle
        self._reactor = reactor
        self._log = log
        #: What is handed on: ``event`` or ``mo`` (the metric's label).
        self.kind = kind
        self._noun = "MO message" if kind == "mo" else kind
        metrics = metrics if metrics is not None else JunebugMetrics()
        self._handed_metric = metrics.handoffs.labels(kind, "forwarder")
        self._declined_metric = metrics.handoffs.labels(kind, "queue")
        self.timeout = timeout
        self.most_in_flight = most_in_flight
        self.cooldown = cooldown
        #: Hand-offs under way (a timed-out one counts until it finishes).
        self.in_flight = 0
        #: The moving mean of hand-off times, in seconds.
        self.mean_seconds = 0.0
        self._off_until = 0.0
        #: Messages taken by the forwarder, and those left to the queue.
        self.handed = 0
        self.declined = 0

    def _open(self) -> bool:
        return (
            self.timeout > 0
            and self.in_flight < self.most_in_flight
            and self._reactor.seconds() >= self._off_until
        )

    def _name(self, message: AnyMessage) -> str:
        return f"{self._noun} {message.get('event_id') or message.get('message_id')}"

    async def hand_on(self, message: AnyMessage) -> bool:
        """True once the forwarder has taken ``message``; False if the caller
        must publish it to the channel's queue instead."""
        if not self._open():
            self._decline()
            return False
        self.in_flight += 1
        started = self._reactor.seconds()
        outcome: Deferred[bool | None] = Deferred()

        def timed_out() -> None:
            if not outcome.called:
                outcome.callback(None)

        timer = self._reactor.callLater(self.timeout, timed_out)

        def settled(result: object) -> None:
            self.in_flight -= 1
            if timer.active():
                timer.cancel()
            took = self._reactor.seconds() - started
            self.mean_seconds += MEAN_WEIGHT * (took - self.mean_seconds)
            if isinstance(result, Failure):
                self._log.failure(
                    "Handing {what} on failed", result, what=self._name(message)
                )
            if not outcome.called:
                outcome.callback(not isinstance(result, Failure))

        ensureDeferred(self._handle(cast(Message, message))).addBoth(settled)
        taken = await outcome
        if taken is None:
            self._turn_off(
                f"handing {self._name(message)} on took over {self.timeout:g}s"
            )
        elif self.mean_seconds > SLOW_SHARE * self.timeout:
            self._turn_off(
                f"handing on took {self.mean_seconds:.3f}s on average,"
                f" over {SLOW_SHARE * self.timeout:g}s"
            )
        if taken:
            self.handed += 1
            self._handed_metric.inc()
            return True
        self._decline()
        return False

    def _decline(self) -> None:
        self.declined += 1
        self._declined_metric.inc()

    def _turn_off(self, why: str) -> None:
        if self._reactor.seconds() < self._off_until:
            return  # off already (another hand-off under way was slow too)
        self._off_until = self._reactor.seconds() + self.cooldown
        self.mean_seconds = 0.0
        # Info, not a warning: under a burst this is the short way working
        # as meant (junebug_handoffs_total{way="queue"} counts it).
        self._log.info(
            "Publishing this channel's {kind}s to RabbitMQ for {cooldown}s: {why}",
            kind=self._noun,
            why=why,
            cooldown=self.cooldown,
        )
