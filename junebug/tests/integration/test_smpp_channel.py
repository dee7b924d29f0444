"""An ``smpp`` channel created over the API, against both real SMSC peers.

MT in through the messages endpoint, ``submitted`` and the delivery report out
to the message's ``event_url``; the peer's MO reaches ``mo_url``.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from junebug.testing.polling import wait_until
from junebug.tests.support.smpp_channel import start_smpp_channel
from junebug.tests.support.smsc import PeerKind


class SmppChannelMixin:
    kind: PeerKind = "node"

    async def test_mt_events_and_mo(self) -> None:
        """MT gets submitted + delivery_succeeded at event_url; MO reaches mo_url."""
        case: Any = self
        started = await start_smpp_channel(case, reactor, self.kind, "/mo")
        peer, sink, base, api = started.peer, started.sink, started.base, started.api
        cid = started.channel_id
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
