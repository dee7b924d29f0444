"""The transport toolkit: status de-duplication, background tasks, wait_all."""

from __future__ import annotations

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.task import Clock
from twisted.logger import Logger
from twisted.trial.unittest import SynchronousTestCase

from junebug.messages import Message
from junebug.testing.context import RecordingContext
from junebug.transports.toolkit import BackgroundTasks, observe, wait_all


class StatusReporterTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.recording = RecordingContext(self.clock)
        self.statuses = self.recording.context.statuses

    def published(self) -> list[tuple[str, str, str, str]]:
        return [
            (s["component"], s["status"], s["type"], s["message"])
            for s in self.recording.statuses
        ]

    def test_repeat_of_the_components_previous_status_is_skipped(self) -> None:
        """Same level and type as the component's previous status: skipped,
        whatever the message; other components are judged on their own."""
        self.statuses.report("smpp", "down", "connection_lost", "Could not connect")
        self.statuses.report("smpp", "down", "connection_lost", "Connection lost")
        self.statuses.report("http", "down", "connection_lost", "Gone")
        self.statuses.report("smpp", "ok", "bound", "Bound")
        self.statuses.report("smpp", "down", "connection_lost", "Connection lost")
        self.assertEqual(
            self.published(),
            [
                ("smpp", "down", "connection_lost", "Could not connect"),
                ("http", "down", "connection_lost", "Gone"),
                ("smpp", "ok", "bound", "Bound"),
                ("smpp", "down", "connection_lost", "Connection lost"),
            ],
        )
        first = self.recording.statuses[0]
        self.assertEqual(first["transport_name"], "chan-1")

    def test_details_and_reasons(self) -> None:
        self.statuses.report(
            "response", "down", "timeout", "Timed out", details={"a": 1}, reasons=["r"]
        )
        [status] = self.recording.statuses
        self.assertEqual(status["details"], {"a": 1})
        self.assertEqual(status["reasons"], ["r"])

    def test_a_status_that_failed_to_publish_is_published_next_time(self) -> None:
        failing = [True]
        published: list[Message] = []

        async def publish(status: Message) -> None:
            if failing.pop() if failing else False:
                raise RuntimeError("broker down")
            published.append(status)

        context = RecordingContext(self.clock).context
        statuses = type(context.statuses)(
            "chan-1", publish, Logger(), BackgroundTasks(self.clock, Logger())
        )
        statuses.report("smpp", "ok", "bound", "Bound")
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        statuses.report("smpp", "ok", "bound", "Bound")
        self.assertEqual([s["type"] for s in published], ["bound"])

    def test_published_in_order_without_waiting(self) -> None:
        """report() returns at once; one event is in flight at a time; flush()
        waits for all."""
        pending: list[Deferred[None]] = []
        order: list[str] = []

        async def publish(status: Message) -> None:
            order.append(status["type"])
            d: Deferred[None] = Deferred()
            pending.append(d)
            await d

        tasks = BackgroundTasks(self.clock, Logger())
        statuses = type(self.statuses)("chan-1", publish, Logger(), tasks)
        statuses.report("c", "down", "one", "1")
        statuses.report("c", "down", "two", "2")
        self.assertEqual(order, ["one"])
        flushed = ensureDeferred(statuses.flush())
        self.assertNoResult(flushed)
        pending[0].callback(None)
        self.assertEqual(order, ["one", "two"])
        self.assertNoResult(flushed)
        self.assertEqual(len(tasks), 1)
        pending[1].callback(None)
        self.successResultOf(flushed)
        self.assertEqual(len(tasks), 0)


class BackgroundTasksTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.tasks = BackgroundTasks(self.clock, Logger())

    def test_tracked_until_done_and_waited_for(self) -> None:
        gate: Deferred[None] = Deferred()

        async def work() -> None:
            await gate

        self.tasks.spawn(work(), "work")
        self.assertEqual(len(self.tasks), 1)
        waiting = ensureDeferred(self.tasks.wait(5))
        self.assertNoResult(waiting)
        gate.callback(None)
        self.assertIs(self.successResultOf(waiting), True)
        self.assertEqual(len(self.tasks), 0)

    def test_failure_is_logged_not_raised(self) -> None:
        async def broken() -> None:
            raise ValueError("bad")

        done = self.tasks.spawn(broken(), "break")
        self.assertIsNone(self.successResultOf(done))
        self.assertEqual(len(self.flushLoggedErrors(ValueError)), 1)
        self.assertEqual(len(self.tasks), 0)

    def test_wait_gives_up_and_cancels(self) -> None:
        cancelled: list[bool] = []
        never: Deferred[None] = Deferred(lambda d: cancelled.append(True))

        async def stuck() -> None:
            await never

        self.tasks.spawn(stuck(), "stuck")
        waiting = ensureDeferred(self.tasks.wait(5))
        self.clock.advance(4.9)
        self.assertNoResult(waiting)
        self.clock.advance(0.1)
        self.assertIs(self.successResultOf(waiting), False)
        self.assertEqual(cancelled, [True])
        self.assertEqual(len(self.tasks), 0)
        self.assertEqual(self.clock.getDelayedCalls(), [])


class WaitAllTests(SynchronousTestCase):
    def test_nothing_to_wait_for(self) -> None:
        self.assertIs(
            self.successResultOf(ensureDeferred(wait_all(Clock(), [], 1))), True
        )

    def test_observed_deferreds_are_not_cancelled(self) -> None:
        clock = Clock()
        d: Deferred[str] = Deferred()
        waiting = ensureDeferred(wait_all(clock, [observe(d)], 1))
        clock.advance(1)
        self.assertIs(self.successResultOf(waiting), False)
        self.assertNoResult(d)
        d.callback("result")
        self.assertEqual(self.successResultOf(d), "result")

    def test_failures_are_consumed(self) -> None:
        clock = Clock()
        d: Deferred[None] = Deferred()
        waiting = ensureDeferred(wait_all(clock, [d], 1))
        d.errback(ValueError("x"))
        self.assertIs(self.successResultOf(waiting), True)
        self.assertEqual(clock.getDelayedCalls(), [])
