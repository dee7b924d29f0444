"""ReconnectingClient: back-off counted from the last ready connection."""

from __future__ import annotations

from twisted.internet import error
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.interfaces import (
    IProtocol,
    IProtocolFactory,
    IStreamClientEndpoint,
)
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from junebug.reconnecting import ReconnectingClient


@implementer(IStreamClientEndpoint)
class ScriptedEndpoint:
    """Each connect() waits until the test refuses or accepts it."""

    def __init__(self) -> None:
        self.attempts: list[tuple[Deferred[IProtocol], IProtocolFactory]] = []

    def connect(self, factory: IProtocolFactory) -> Deferred[IProtocol]:
        d: Deferred[IProtocol] = Deferred()
        self.attempts.append((d, factory))
        return d

    def refuse(self) -> None:
        d, _ = self.attempts[-1]
        d.errback(error.ConnectionRefusedError("no"))

    def accept(self) -> IProtocol:
        d, factory = self.attempts[-1]
        protocol = factory.buildProtocol(None)
        assert protocol is not None
        protocol.makeConnection(StringTransport())
        d.callback(protocol)
        return protocol


def lose(protocol: IProtocol) -> None:
    protocol.connectionLost(Failure(error.ConnectionDone()))


class ReconnectingClientTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.endpoint = ScriptedEndpoint()
        self.asked: list[int] = []
        self.failed: list[Failure] = []
        self.client = ReconnectingClient(
            self.clock,
            self.endpoint,
            Factory.forProtocol(Protocol),
            self.delay,
            on_connect_failed=self.failed.append,
        )

    def delay(self, failures: int) -> float:
        self.asked.append(failures)
        return 1.0

    def retry(self) -> None:
        before = len(self.endpoint.attempts)
        self.clock.advance(1.0)
        self.assertEqual(len(self.endpoint.attempts), before + 1)

    def test_failures_count_from_the_last_ready_connection(self) -> None:
        """Refused connects and connections closed before ready() add up; a
        ready connection resets the count, and losing it is no failure."""
        self.client.start()
        self.endpoint.refuse()
        self.retry()
        lose(self.endpoint.accept())  # connected, never ready: a failure
        self.retry()
        self.endpoint.refuse()
        self.assertEqual(self.asked, [1, 2, 3])
        self.assertEqual(self.client.failures, 3)
        self.retry()
        connection = self.endpoint.accept()
        self.client.ready()
        self.assertEqual(self.client.failures, 0)
        lose(connection)
        self.retry()
        self.endpoint.refuse()
        self.assertEqual(self.asked, [1, 2, 3, 0, 1])

    def test_connect_failures_are_reported(self) -> None:
        self.client.start()
        self.endpoint.refuse()
        [failure] = self.failed
        self.assertTrue(failure.check(error.ConnectionRefusedError))
        # A connection closed before it was ready is not a connect failure.
        self.retry()
        lose(self.endpoint.accept())
        self.assertEqual(len(self.failed), 1)

    def test_stop_cancels_the_attempt_quietly_and_stops_retrying(self) -> None:
        self.client.start()
        stopping = ensureDeferred(self.client.stop())
        self.successResultOf(stopping)
        self.assertEqual(self.failed, [])
        self.clock.advance(100)
        self.assertEqual(len(self.endpoint.attempts), 1)

    def test_stop_closes_the_connection(self) -> None:
        self.client.start()
        connection = self.endpoint.accept()
        self.client.ready()
        transport = connection.transport
        assert isinstance(transport, StringTransport)
        stopping = ensureDeferred(self.client.stop())
        self.assertTrue(transport.disconnecting)
        self.assertNoResult(stopping)
        lose(connection)
        self.successResultOf(stopping)
        self.clock.advance(100)
        self.assertEqual(len(self.endpoint.attempts), 1)
