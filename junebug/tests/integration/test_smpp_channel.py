"""An ``smpp`` channel created over the API, against both real SMSC peers.

MT in through the messages endpoint, ``submitted`` and the delivery report out
to the message's ``event_url``; the peer's MO reaches ``mo_url``.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from junebug.testing.api import ApiDriver
from junebug.testing.http_sink import HttpSink
from junebug.testing.polling import wait_until
from junebug.tests.support.smsc import SmscPeer


class SmppChannelMixin:
    kind = "node"

    async def test_mt_events_and_mo(self) -> None:
        """MT gets submitted + delivery_succeeded at event_url; MO reaches mo_url."""
        case: Any = self
        peer = SmscPeer(reactor, self.kind, mode="dlr")  # type: ignore[arg-type]
        await peer.start()
        case.addCleanup(peer.stop)
        sink = HttpSink(reactor)
        base = await sink.start()
        case.addCleanup(sink.stop)
        api = ApiDriver(reactor)
        case.addCleanup(api.stop)
        await api.start()
        code, created, _ = await api.request(
            "POST",
            "/channels/",
            {
                "type": "smpp",
                "mo_url": base + "/mo",
                "config": {
                    "twisted_endpoint": peer.endpoint,
                    "system_id": "esme1",
                    "password": "secret",
                    "initial_reconnect_delay": 0.1,
                },
            },
        )
        case.assertEqual(code, 201, created)
        cid = created["result"]["id"]
        mo = await sink.next(timeout=20)
        case.assertEqual(mo.path, "/mo")
        case.assertEqual(mo.body["channel_id"], cid)
        case.assertIn("hello MO", mo.body["content"])

        text = "Sawubona \u2014 \u00e9t\u00e9 \U0001f600"
        code, sent, _ = await api.request(
            "POST",
            f"/channels/{cid}/messages/",
            {
                "to": "27820000001",
                "from": "1234",
                "content": text,
                "event_url": base + "/ev",
            },
        )
        case.assertEqual(code, 201, sent)
        message_id = sent["result"]["message_id"]
        events = {}
        for _ in range(2):
            received = await sink.next(timeout=20)
            case.assertEqual(received.path, "/ev")
            case.assertEqual(received.body["message_id"], message_id)
            events[received.body["event_type"]] = received.body
        case.assertEqual(set(events), {"submitted", "delivery_succeeded"})
        await wait_until(lambda: peer.submits)
        case.assertEqual(peer.submits[-1]["destination_addr"], "27820000001")

        async def status() -> Any:
            _, found, _ = await api.request("GET", f"/channels/{cid}")
            return found["result"]["status"]

        current = await status()
        case.assertEqual(current["components"]["smpp"]["status"], "ok")
        case.assertEqual(current["status"], "ok")


class NodePeerChannelTests(SmppChannelMixin, TestCase):
    kind = "node"


class Smpp34PeerChannelTests(SmppChannelMixin, TestCase):
    kind = "smpp34"
