"""Tests for the MT rate limit and the throttle gate."""

from __future__ import annotations

import itertools

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from junebug.transports.smpp.pacing import RateLimiter, ThrottleGate


class RateLimiterTests(SynchronousTestCase):
    def test_unlimited(self) -> None:
        limiter = RateLimiter(Clock(), 0)
        for _ in range(1000):
            self.successResultOf(limiter.acquire())

    def test_spacing(self) -> None:
        """At 10/s, sends are 0.1s apart, in the order asked."""
        clock = Clock()
        limiter = RateLimiter(clock, 10)
        fired: list[tuple[int, float]] = []
        for n in range(5):
            limiter.acquire().addCallback(
                lambda _, n=n: fired.append((n, clock.seconds()))
            )
        self.assertEqual(fired, [(0, 0.0)])
        clock.pump([0.05] * 10)
        self.assertEqual([n for n, _ in fired], [0, 1, 2, 3, 4])
        times = [when for _, when in fired]
        for earlier, later in itertools.pairwise(times):
            self.assertLessEqual(abs(later - earlier - 0.1), 0.051)

    def test_per_second_rate_is_exact(self) -> None:
        """Over 10 s of saturation the count is rate * 10 (+1 for the first),
        however coarse the timer: lateness does not accumulate."""
        clock = Clock()
        limiter = RateLimiter(clock, 50)
        sent = []
        pending = [limiter.acquire() for _ in range(1000)]
        for d in pending:
            d.addCallback(lambda _: sent.append(clock.seconds()))
        clock.pump([0.033] * 303)  # ~10 s in coarse, irregular steps
        in_ten = [when for when in sent if when <= 10.0]
        # Trial's assertAlmostEqual has no delta: compare by hand (within 1%).
        self.assertLessEqual(abs(len(in_ten) - 500), 5)

    def test_idle_time_is_not_banked(self) -> None:
        """After an idle spell one send goes at once, then the spacing resumes."""
        clock = Clock()
        limiter = RateLimiter(clock, 2)
        self.successResultOf(limiter.acquire())
        clock.advance(10)
        self.successResultOf(limiter.acquire())
        self.assertNoResult(limiter.acquire())


class ThrottleGateTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.changes: list[bool] = []
        self.gate = ThrottleGate(self.clock, 0.1, 1.0, self.changes.append)

    def test_open_by_default(self) -> None:
        self.assertIsNone(self.gate.wait())
        self.assertFalse(self.gate.active)

    def test_refusal_closes_the_gate(self) -> None:
        delay = self.gate.refused(first=True)
        self.assertEqual(delay, 0.1)
        self.assertTrue(self.gate.active)
        self.assertEqual(self.changes, [True])
        pause = self.gate.wait()
        assert pause is not None
        self.clock.advance(0.1)
        self.successResultOf(pause)
        self.assertIsNone(self.gate.wait())

    def test_backoff_doubles_until_accepted(self) -> None:
        """Refusals in a row double the wait up to the maximum."""
        delays = []
        for _ in range(6):
            delays.append(round(self.gate.refused(first=False), 3))
            self.clock.advance(delays[-1])
        self.assertEqual(delays, [0.1, 0.2, 0.4, 0.8, 1.0, 1.0])
        self.gate.accepted()
        self.assertEqual(round(self.gate.refused(first=False), 3), 0.1)

    def test_active_until_every_refused_message_is_settled(self) -> None:
        """throttled_end only once no refused message is waiting."""
        self.gate.refused(first=True)
        self.gate.refused(first=True)
        self.gate.accepted()
        self.gate.done()
        self.assertTrue(self.gate.active)
        self.gate.done()
        self.assertFalse(self.gate.active)
        self.assertEqual(self.changes, [True, False])
