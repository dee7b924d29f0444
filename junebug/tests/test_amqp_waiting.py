"""The brokers' :class:`Waiters` (released together, failed together, or timed
out) and consumers' :class:`RunningHandlers`."""

from __future__ import annotations

from twisted.internet.defer import ensureDeferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from junebug.amqp.waiting import RunningHandlers, Waiters


class WaitersTests(SynchronousTestCase):
    def test_release_lets_every_waiter_return(self) -> None:
        waiters = Waiters()
        first = ensureDeferred(waiters.wait())
        second = ensureDeferred(waiters.wait())
        self.assertTrue(waiters)
        waiters.release()
        self.assertIsNone(self.successResultOf(first))
        self.assertIsNone(self.successResultOf(second))
        self.assertFalse(waiters)

    def test_fail_makes_every_waiter_raise(self) -> None:
        waiters = Waiters()
        waiting = ensureDeferred(waiters.wait())
        waiters.fail(ValueError("closed"))
        self.failureResultOf(waiting, ValueError)
        self.assertFalse(waiters)

    def test_a_timed_out_waiter_raises_and_leaves(self) -> None:
        clock = Clock()
        waiters = Waiters()
        patient = ensureDeferred(waiters.wait())
        hasty = ensureDeferred(
            waiters.wait(clock, 2.0, lambda s: TimeoutError(f"after {s:g}s"))
        )
        clock.advance(2.0)
        failure = self.failureResultOf(hasty, TimeoutError)
        self.assertEqual(str(failure.value), "after 2s")
        self.assertNoResult(patient)
        waiters.release()
        self.successResultOf(patient)

    def test_released_in_time_cancels_the_timeout(self) -> None:
        clock = Clock()
        waiters = Waiters()
        waiting = ensureDeferred(waiters.wait(clock, 2.0, TimeoutError))
        waiters.release()
        self.successResultOf(waiting)
        self.assertEqual(clock.getDelayedCalls(), [])


class RunningHandlersTests(SynchronousTestCase):
    def test_idle_at_once_when_none_runs(self) -> None:
        self.successResultOf(ensureDeferred(RunningHandlers().idle()))

    def test_idle_once_the_last_handler_finished(self) -> None:
        handlers = RunningHandlers()
        handlers.started()
        handlers.started()
        idle = ensureDeferred(handlers.idle())
        handlers.finished()
        self.assertNoResult(idle)
        self.assertEqual(handlers.count, 1)
        handlers.finished()
        self.successResultOf(idle)
        self.assertEqual(handlers.count, 0)
