"""Keeping one client connection up, backing off from the last *ready* one.

:class:`ReconnectingClient` is the one reconnect loop of Junebug's clients
(SMPP, XMPP, RabbitMQ).  It runs Twisted's
:class:`~twisted.application.internet.ClientService` and adds what the three
need alike:

- **Back-off counted from the last ready connection.**  A connection is
  *ready* once the protocol above TCP is usable (bound, logged in, set up) and
  its owner calls :meth:`ReconnectingClient.ready`.  The retry policy is
  called with the number of attempts since then that failed: a connect that
  failed, or a connection that closed before it was ready (a refused bind or
  login, an unknown vhost).  The loss of a ready connection is no failure: the
  next attempt waits ``retry_delay(0)``.
- **Failed connection attempts reported** to ``on_connect_failed`` (not the
  attempts cancelled by :meth:`ReconnectingClient.stop`, nor any after it).

How ClientService counts, and why this does not rely on it
----------------------------------------------------------

ClientService passes its ``retryPolicy`` the number of attempts since it last
entered its *connected* state, starting from 1: the loss of a connected
connection is attempt 1, each failed attempt after it adds one.  It enters
that state as soon as the endpoint connects, unless a ``prepareConnection``
callable is given, in which case only once that callable's result has fired.
So without ``prepareConnection`` a server that accepts TCP and then refuses
the login resets the count every time, and the client retries at the first
delay for ever.

``prepareConnection`` is not the fix either (checked with Twisted 26.10):

- if the connection is lost while the ``prepareConnection`` Deferred is still
  pending, ClientService is told of the disconnect in a state that has no
  transition for it: ``connectionLost`` raises ``NoTransition`` and the
  service never retries;
- if that Deferred fails, ClientService counts a failed attempt but leaves
  the connection open; closing it later raises ``NoTransition`` too.

So this helper gives ClientService no ``prepareConnection`` and counts
failures itself: ClientService calls the retry policy exactly once each time
it is about to wait before an attempt, and :meth:`ReconnectingClient.ready`
marks the connection that ends next as one that was ready.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.application.internet import ClientService
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import (
    IProtocolFactory,
    IReactorTime,
    IStreamClientEndpoint,
)
from twisted.python.failure import Failure
from zope.interface import implementer

__all__ = ["ReconnectingClient", "RetryDelay"]

#: Seconds to wait before the next attempt, given the failures since the last
#: ready connection (0 right after a ready connection was lost).
RetryDelay = Callable[[int], float]


@implementer(IStreamClientEndpoint)
class _ReportingEndpoint:
    """An endpoint that tells its client about each failed connect."""

    def __init__(
        self, client: ReconnectingClient, wrapped: IStreamClientEndpoint
    ) -> None:
        self._client = client
        self._wrapped = wrapped

    def connect(self, protocolFactory: IProtocolFactory) -> Deferred[Any]:  # noqa: N803
        d: Deferred[Any] = self._wrapped.connect(protocolFactory)
        return d.addErrback(self._client._connect_failed)


class ReconnectingClient:
    """One connection to ``endpoint``, re-established whenever it ends.

    Nothing connects until :meth:`start`.  The owner's protocol calls
    :meth:`ready` once the connection is usable; see the module doc for how
    failures are counted.
    """

    def __init__(
        self,
        clock: IReactorTime,
        endpoint: IStreamClientEndpoint,
        factory: IProtocolFactory,
        retry_delay: RetryDelay,
        *,
        on_connect_failed: Callable[[Failure], object] | None = None,
    ) -> None:
        self._retry_delay = retry_delay
        self._on_connect_failed = on_connect_failed
        self._service = ClientService(
            _ReportingEndpoint(self, endpoint),
            factory,
            retryPolicy=self._next_delay,
            clock=clock,
        )
        self._failures = 0
        self._was_ready = False
        self._started = False
        self._stopping = False

    @property
    def failures(self) -> int:
        """Attempts that failed since the last ready connection."""
        return self._failures

    def start(self) -> None:
        """Start connecting (again after :meth:`stop`)."""
        if not self._started:
            self._started = True
            self._stopping = False
            self._service.startService()

    def ready(self) -> None:
        """The current connection is usable: failures count from now."""
        self._failures = 0
        self._was_ready = True

    async def stop(self) -> None:
        """Stop reconnecting; close the connection; wait until it is closed."""
        self._stopping = True
        if self._started:
            self._started = False
            await self._service.stopService()

    def _next_delay(self, _attempt: int) -> float:
        # ClientService's own count is ignored (see the module doc).
        if self._was_ready:
            self._was_ready = False
        else:
            self._failures += 1
        return self._retry_delay(self._failures)

    def _connect_failed(self, failure: Failure) -> Failure:
        if (
            self._on_connect_failed is not None
            and not self._stopping
            and not failure.check(CancelledError)
        ):
            self._on_connect_failed(failure)
        return failure
