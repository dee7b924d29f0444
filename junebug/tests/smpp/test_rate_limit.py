"""The channel's rate limit in SmppTransport: one unit per ``submit_sm``."""

from __future__ import annotations

from typing import Any

import attrs
from twisted.internet.defer import ensureDeferred

from junebug.channels.rate_limit import RateLimit, SendBudget
from junebug.stores.memory import MemoryBackend
from junebug.tests.smpp.helpers import mt
from junebug.tests.smpp.test_transport import TransportTestCase
from junebug.transports.smpp.pdu import CommandStatus
from junebug.transports.smpp.transport import SmppTransport, TransportStopped


class RateLimitTests(TransportTestCase):
    def limited(self, count: int, window: float, **overrides: Any) -> Any:
        """A bound transport whose channel allows ``count`` per ``window`` s."""
        self.budget = SendBudget(
            "chan-1",
            MemoryBackend(self.reactor),
            self.reactor,
            lambda: RateLimit(count, window),
        )
        self.ctx.context = attrs.evolve(self.ctx.context, send_budget=self.budget.spend)
        return self.started(**overrides)

    def test_transport_spends_the_budget_itself(self) -> None:
        self.assertIs(SmppTransport.SPENDS_SEND_BUDGET, True)

    def test_a_three_part_message_costs_three(self) -> None:
        """3 per 10 s: the 3 parts of a long message go, the next message
        waits for the window."""
        peer = self.limited(3, 10, window_size=10)
        long = self.send(mt("x" * 400))
        short = self.send(mt("short"))
        parts = self.submits(peer)
        self.assertEqual(len(parts), 3)
        self.answer(peer, parts)
        self.successResultOf(long)
        self.assertNoResult(short)
        self.reactor.advance(9.9)
        self.assertEqual(peer.received(), [])
        self.reactor.advance(0.1)
        [late] = self.submits(peer)
        self.assertEqual(late.short_message, b"short")
        self.answer(peer, [late])
        self.successResultOf(short)

    def test_order_is_kept(self) -> None:
        peer = self.limited(2, 1, window_size=10)
        for n in range(6):
            self.send(mt(f"m{n}"))
        sent = []
        for _ in range(3):
            submits = self.submits(peer)
            self.assertEqual(len(submits), 2)
            self.answer(peer, submits)
            sent += [s.short_message for s in submits]
            self.reactor.advance(1)
        self.assertEqual(sent, [f"m{n}".encode() for n in range(6)])

    def test_combined_with_mt_tps(self) -> None:
        """Both apply: 2 per second under a 4/s mt_tps goes 2, spaced by
        0.25 s, then nothing until the window lets the next 2 go."""
        peer = self.limited(2, 1, mt_tps=4, window_size=100)
        for n in range(6):
            self.send(mt(f"m{n}"))
        counts = []
        for _ in range(12):
            submits = self.submits(peer)
            self.answer(peer, submits)
            counts.append(len(submits))
            self.reactor.advance(0.25)
        self.assertEqual(counts, [1, 1, 0, 0] * 3)

    def test_a_resent_pdu_costs_again(self) -> None:
        """A refused submit_sm sent again is another PDU on the link."""
        peer = self.limited(2, 10, throttle_delay=0.5, window_size=10)
        d = self.send(mt("a"))
        [first] = self.submits(peer)
        self.answer(peer, [first], CommandStatus.ESME_RTHROTTLED)
        self.reactor.advance(0.5)
        [again] = self.submits(peer)
        self.answer(peer, [again])
        self.successResultOf(d)
        other = self.send(mt("b"))
        self.assertEqual(peer.received(), [], "the budget of 2 is spent")
        self.reactor.advance(9.5)
        self.answer(peer, self.submits(peer))
        self.successResultOf(other)

    def test_waiting_parts_go_back_when_stopping(self) -> None:
        peer = self.limited(1, 10, window_size=10)
        sent = self.send(mt("a"))
        waiting = self.send(mt("b"))
        self.assertEqual(len(self.submits(peer)), 1)
        self.budget.stop()
        self.failureResultOf(waiting, TransportStopped)
        stopping = ensureDeferred(self.transport.stop())
        [unbind] = peer.received()
        peer.send(unbind.response())
        self.successResultOf(stopping)
        # unanswered when the link closed: back to the queue too
        self.failureResultOf(sent, TransportStopped)
