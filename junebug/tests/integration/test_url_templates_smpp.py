"""A templated event_url through a real SMPP channel and SMSC peer.

The delivery report comes back from the peer as a ``deliver_sm`` receipt; the
event is posted to the URL filled with Kannel's ``%d`` (1 delivered, 8 the
ack) and ``%I`` (our message id), and the receipt's state as ``%A``.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from junebug.tests.support.smpp_channel import start_smpp_channel


class SmppUrlTemplateTests(TestCase):
    async def test_delivery_report_fills_the_event_url(self) -> None:
        """%d and %I (and {event_type}, %A) reach the event_url of an SMPP MT."""
        started = await start_smpp_channel(self, reactor, "node", "/mo/%i?from=%p")
        sink, base, api = started.sink, started.base, started.api
        cid = started.channel_id
        mo = await sink.next(timeout=20)
        self.assertEqual(mo.path, f"/mo/{cid}")
        self.assertEqual(parse_qs(urlsplit(mo.uri).query)["from"], [mo.body["from"]])

        code, sent, _ = await api.request(
            "POST",
            f"/channels/{cid}/messages/",
            {
                "to": "27820000001",
                "from": "1234",
                "content": "hello",
                "event_url": base + "/ev/%d?id=%I&type={event_type}&text=%A",
            },
        )
        self.assertEqual(code, 201, sent)
        message_id = sent["result"]["message_id"]
        seen = {}
        for _ in range(2):
            received = await sink.next(timeout=20)
            query = parse_qs(urlsplit(received.uri).query)
            self.assertEqual(query["id"], [message_id])
            self.assertEqual(query["type"], [received.body["event_type"]])
            seen[received.path] = query.get("text", [""])[0]
        self.assertEqual(set(seen), {"/ev/8", "/ev/1"})
        # The receipt's state, as this peer spells it (DELIVRD or DELIVERED).
        self.assertIn(seen["/ev/1"], ("DELIVRD", "DELIVERED"))
        self.assertEqual(seen["/ev/8"], "")
