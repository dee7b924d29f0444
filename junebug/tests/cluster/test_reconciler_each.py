"""The reconciler's per-channel work runs a few at a time, over any number."""

from __future__ import annotations

from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase

from junebug.cluster import reconciler
from junebug.cluster.reconciler import CONCURRENCY, _each


class EachTests(SynchronousTestCase):
    def test_thousands_that_finish_at_once_do_not_recurse(self) -> None:
        """The first works wait (a channel being started); the thousands
        queued behind them finish synchronously (already up to date).  With
        a semaphore each release ran the next waiter inside the previous
        one's callbacks: RecursionError, and the whole pass failed."""
        seen: list[str] = []
        gates: list[Deferred[None]] = []

        async def work(channel_id: str) -> None:
            if len(gates) < CONCURRENCY:
                gate: Deferred[None] = Deferred()
                gates.append(gate)
                await gate
            seen.append(channel_id)

        ids = [str(n) for n in range(20_000)]
        done = Deferred.fromCoroutine(_each(ids, work))
        for gate in gates:
            gate.callback(None)
        self.successResultOf(done)
        self.assertEqual(sorted(seen), sorted(ids))
        self.assertEqual(self.flushLoggedErrors(), [])

    def test_at_most_concurrency_at_once_and_a_failure_is_logged(self) -> None:
        waiting: list[Deferred[None]] = []

        async def work(channel_id: str) -> None:
            if channel_id == "bad":
                raise RuntimeError("boom")
            gate: Deferred[None] = Deferred()
            waiting.append(gate)
            await gate

        ids = ["bad", *(str(n) for n in range(CONCURRENCY + 5))]
        done = Deferred.fromCoroutine(_each(ids, work))
        self.assertEqual(len(waiting), CONCURRENCY)
        while waiting:
            waiting.pop(0).callback(None)
        self.successResultOf(done)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertIs(reconciler.CONCURRENCY, CONCURRENCY)
