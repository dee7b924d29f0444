"""SmppTransport against two real, independent SMSCs, over loopback TCP.

Each test runs one peer of ``junebug/tests/support/peers`` as a subprocess
(:class:`~junebug.tests.support.smsc.SmscPeer`): the npm ``smpp`` server and the
PyPI ``smpp34`` server.  The transport's store is the real Redis in the tests
that check delivery-report correlation.  Nothing sleeps blindly: every wait
polls for the outcome, bounded.
"""

from __future__ import annotations

from typing import Any, ClassVar

import attrs
import pytest
from twisted.internet import reactor
from twisted.internet.defer import DeferredList, ensureDeferred
from twisted.trial.unittest import TestCase

from junebug.messages import Message
from junebug.testing.polling import wait_until
from junebug.testing.redis import start_redis_fixture
from junebug.tests.smpp.helpers import FakeContext, mt, smpp_config
from junebug.tests.support.smsc import PeerKind, SmscPeer
from junebug.transports.smpp.codec import parse_udh
from junebug.transports.smpp.transport import SmppTransport

pytestmark = pytest.mark.integration

LONG_UNICODE = ("Молоко, хлеб и сыр — 牛奶和面包 — حليب وخبز — 🥛🍞🧀 — ¡Olé! ") * 5


def received_text(peer: SmscPeer, kind: PeerKind) -> list[str]:
    """The messages the peer received, each rebuilt from its UDH parts."""
    by_reference: dict[tuple[int, int], dict[int, str]] = {}
    singles: list[str] = []
    for submit in peer.submits:
        if submit["status"] != 0:
            continue
        if kind == "node":
            udh = submit["udh"]
            if not udh:
                singles.append(submit["message"])
                continue
            element = bytes.fromhex(udh[0])  # iei, length, ref, total, seqnum
            ref, total, seqnum = element[2], element[3], element[4]
            by_reference.setdefault((ref, total), {})[seqnum] = submit["message"]
        else:
            raw = bytes.fromhex(submit["short_message"])
            codec = "utf-16-be" if submit["data_coding"] == 8 else "latin-1"
            if not submit["esm_class"] & 0x40:
                singles.append(raw.decode(codec))
                continue
            [element], data = parse_udh(raw)
            ref, total, seqnum = element.data
            by_reference.setdefault((ref, total), {})[seqnum] = data.decode(codec)
    rebuilt = [
        "".join(parts[n] for n in sorted(parts))
        for (_, total), parts in by_reference.items()
        if len(parts) == total
    ]
    return singles + rebuilt


class PeerTestsMixin:
    """The same behaviour, checked against each peer."""

    KIND: ClassVar[PeerKind]

    async def start_peer(self, mode: str = "dlr", port: int | None = None) -> SmscPeer:
        peer = SmscPeer(reactor, self.KIND, mode=mode, port=port)
        await peer.start()
        self.addCleanup(peer.stop)
        return peer

    async def start_transport(
        self, peer: SmscPeer, *, redis: bool = False, **config: Any
    ) -> tuple[SmppTransport, FakeContext]:
        ctx = FakeContext(reactor)
        if redis:
            fixture = await start_redis_fixture(self, reactor)
            store = await fixture.backend()
            ctx.context = attrs.evolve(ctx.context, store=store)
        settings: dict[str, Any] = {
            "twisted_endpoint": peer.endpoint,
            "initial_reconnect_delay": 0.1,
            "max_reconnect_delay": 0.5,
            "throttle_delay": 0.02,
            "max_throttle_delay": 0.2,
        }
        settings.update(config)
        transport = SmppTransport(ctx.context, smpp_config(**settings))
        await transport.start()
        self.addCleanup(lambda: ensureDeferred(transport.stop()))
        await wait_until(lambda: transport.is_bound, timeout=10, clock=reactor)
        return transport, ctx

    async def send_all(self, transport: SmppTransport, messages: list[Message]) -> None:
        results = await DeferredList(
            [ensureDeferred(transport.handle_outbound(m)) for m in messages],
            consumeErrors=True,
        )
        failures = [result for ok, result in results if not ok]
        assert not failures, failures

    async def test_mt_submitted_and_delivery_report(self) -> None:
        """MT in: an ack (submitted) and then a delivery report, correlated
        through Redis."""
        peer = await self.start_peer("dlr")
        transport, ctx = await self.start_transport(peer, redis=True)
        message = mt("hello from junebug")
        await transport.handle_outbound(message)
        [ack] = [e for e in ctx.events if e["event_type"] == "ack"]
        self.assertEqual(ack["user_message_id"], message["message_id"])
        report = await wait_until(
            lambda: [e for e in ctx.events if e["event_type"] == "delivery_report"],
            timeout=30,
            clock=reactor,
        )
        self.assertEqual(report[0]["delivery_status"], "delivered")
        self.assertEqual(report[0]["user_message_id"], message["message_id"])
        # The SMSC id -> message id mapping is in Redis, its life cut to
        # final_dr_third_party_id_expiry by the final report.
        key = transport._inbound.key(ack["sent_message_id"])
        store = ctx.context.store
        self.assertEqual(await store.get(key), message["message_id"])
        ttl = await store.ttl(key)
        self.assertTrue(ttl is not None and 3500 < ttl <= 3600, ttl)

    async def test_mo_from_peer(self) -> None:
        peer = await self.start_peer("dlr")
        _, ctx = await self.start_transport(peer)
        [mo] = await wait_until(lambda: ctx.inbound, timeout=10, clock=reactor)
        self.assertEqual(
            mo["content"], f"hello MO from {peer.kind.replace('node', 'node-smpp')}"
        )
        self.assertEqual((mo["from_addr"], mo["to_addr"]), ("27820001111", "1234"))

    async def test_long_unicode_arrives_intact(self) -> None:
        """A long mixed-script text with emoji reaches the peer whole."""
        peer = await self.start_peer("ack-only")
        transport, ctx = await self.start_transport(peer)
        await transport.handle_outbound(mt(LONG_UNICODE))
        self.assertEqual(ctx.events[-1]["event_type"], "ack")
        # The peer's log lines travel over a pipe and may trail its answers.
        await wait_until(
            lambda: received_text(peer, self.KIND) == [LONG_UNICODE],
            timeout=10,
            clock=reactor,
        )
        self.assertGreater(len(peer.submits), 1)

    async def check_refusals_survived(self, mode: str) -> None:
        peer = await self.start_peer(mode)
        transport, ctx = await self.start_transport(peer, window_size=5)
        messages = [mt(f"message {n}") for n in range(30)]
        await self.send_all(transport, messages)
        self.assertEqual(
            sorted(e["user_message_id"] for e in ctx.events),
            sorted(m["message_id"] for m in messages),
        )
        self.assertEqual({e["event_type"] for e in ctx.events}, {"ack"})
        # The peer's log lines travel over a pipe and may trail its answers.
        await wait_until(
            lambda: len([s for s in peer.submits if s["status"] == 0]) >= 30,
            timeout=10,
            clock=reactor,
        )
        refused = [s for s in peer.submits if s["status"] != 0]
        self.assertGreaterEqual(len(refused), 10)
        accepted = [s for s in peer.submits if s["status"] == 0]
        self.assertEqual(len(accepted), 30)
        types = [status["type"] for status in ctx.statuses]
        self.assertIn("throttled", types)
        self.assertEqual(types[-1], "throttled_end")

    async def test_throttling_survived(self) -> None:
        """Every third submit_sm is ESME_RTHROTTLED: all 30 are acked once,
        none nacked, none lost."""
        await self.check_refusals_survived("throttle-every-3")

    async def test_peer_restart_reconnects(self) -> None:
        """The SMSC dies and comes back on the same port: rebind, MT works."""
        peer = await self.start_peer("ack-only")
        transport, ctx = await self.start_transport(peer)
        await peer.kill()
        await wait_until(lambda: not transport.is_bound, timeout=10, clock=reactor)
        self.assertIn("connection_lost", [s["type"] for s in ctx.statuses])
        message = mt("after the restart")
        pending = ensureDeferred(transport.handle_outbound(message))
        await self.start_peer("ack-only", port=peer.port)
        await pending
        self.assertEqual(ctx.events[-1]["event_type"], "ack")
        self.assertEqual(ctx.events[-1]["user_message_id"], message["message_id"])
        self.assertEqual(ctx.statuses[-1]["type"], "bound")

    async def test_transmitter_and_receiver_binds(self) -> None:
        peer = await self.start_peer("ack-only")
        for bind_type in ("transmitter", "receiver"):
            transport, _ = await self.start_transport(peer, bind_type=bind_type)
            await transport.stop()


class NodeSmppPeerTests(PeerTestsMixin, TestCase):
    KIND = "node"

    async def test_queue_full_survived(self) -> None:
        """Every third submit_sm is ESME_RMSGQFUL: all acked, none lost."""
        await self.check_refusals_survived("qfull-every-3")

    async def test_wrong_password(self) -> None:
        """A refused bind is a bind_failed status, retried with back-off."""
        peer = await self.start_peer("dlr")
        ctx = FakeContext(reactor)
        transport = SmppTransport(
            ctx.context,
            smpp_config(
                twisted_endpoint=peer.endpoint,
                password="wrong",
                initial_reconnect_delay=0.1,
                max_reconnect_delay=0.2,
            ),
        )
        await transport.start()
        self.addCleanup(lambda: ensureDeferred(transport.stop()))
        await wait_until(
            lambda: any(s["type"] == "bind_failed" for s in ctx.statuses),
            timeout=10,
            clock=reactor,
        )
        failed = next(s for s in ctx.statuses if s["type"] == "bind_failed")
        self.assertIn("ESME_RINVPASWD", failed["message"])
        await peer.wait_for_line("rejected for esme1")
        self.assertFalse(transport.is_bound)

    async def test_refused_receipt_is_delivered_again(self) -> None:
        """A receipt we cannot publish is refused (ESME_RX_T_APPN), and the
        SMSC, which keeps receipts until they are answered with status 0,
        sends it again: the report arrives once publishing works."""
        peer = await self.start_peer("dlr")
        transport, ctx = await self.start_transport(peer, redis=True)
        ctx.fail_events = True
        message = mt("report me later")
        sending = ensureDeferred(transport.handle_outbound(message))
        sending.addErrback(lambda _: None)  # its ack cannot be published either
        await peer.wait_for_line("deliver_sm_resp status=100")
        ctx.fail_events = False
        reports = await wait_until(
            lambda: [e for e in ctx.events if e["event_type"] == "delivery_report"],
            timeout=30,
            clock=reactor,
        )
        self.assertEqual(reports[0]["user_message_id"], message["message_id"])
        self.assertTrue(self.flushLoggedErrors(RuntimeError))


class Smpp34PeerTests(PeerTestsMixin, TestCase):
    KIND = "smpp34"
