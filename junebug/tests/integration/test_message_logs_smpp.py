"""A long MT's message log, through the API, against the node SMSC peer.

The three ``submit_sm`` of a three-part message with their sequence numbers
and UDH parts, each ``submit_sm_resp`` with the SMSC's message id, the
delivery receipts matched back to our message id; no secret in any entry; an
unknown message id is a 404.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from junebug.testing.polling import poll_until
from junebug.tests.support.smpp_channel import start_smpp_channel

#: 400 GSM characters: three 153-character parts behind a concatenation UDH.
LONG_TEXT = ("The quick brown fox jumps over the lazy dog. " * 9)[:400]


def by_command(entries: list[dict[str, Any]], command: str) -> list[dict[str, Any]]:
    details = [e.get("details", {}) for e in entries]
    return [d for d in details if d.get("command") == command]


class SmppMessageLogsTests(TestCase):
    timeout = 60

    async def test_three_part_message_log(self) -> None:
        """Every PDU of a 3-part MT is in its message log, in order."""
        started = await start_smpp_channel(self, reactor, "node", "/mo")
        api, cid, base = started.api, started.channel_id, started.base
        await started.sink.next(timeout=20)  # the peer's MO: the bind is up
        code, sent, _ = await api.request(
            "POST",
            f"/channels/{cid}/messages/",
            {
                "to": "27820000001",
                "from": "1234",
                "content": LONG_TEXT,
                "event_url": base + "/ev",
            },
        )
        self.assertEqual(code, 201, sent)
        message_id = sent["result"]["message_id"]
        path = f"/channels/{cid}/messages/{message_id}/logs"
        entries: list[dict[str, Any]] = []

        async def logged() -> bool:
            nonlocal entries
            code, body, _ = await api.request("GET", path)
            self.assertEqual(code, 200, body)
            self.assertEqual(body["description"], "message logs retrieved")
            entries = body["result"]
            receipts = by_command(entries, "deliver_sm")
            return len(receipts) >= 3

        await poll_until(logged, timeout=30, interval=0.1)

        submits = by_command(entries, "submit_sm")
        responses = by_command(entries, "submit_sm_resp")
        receipts = by_command(entries, "deliver_sm")
        self.assertEqual(len(submits), 3, entries)
        self.assertEqual(len(responses), 3, entries)
        self.assertEqual(sorted(s["concatenation"]["part"] for s in submits), [1, 2, 3])
        self.assertEqual({s["concatenation"]["total"] for s in submits}, {3})
        self.assertEqual(len({s["concatenation"]["ref"] for s in submits}), 1)
        self.assertEqual(sorted(s["part"] for s in submits), [1, 2, 3])
        for submit in submits:
            self.assertEqual(submit["destination_addr"], "27820000001")
            self.assertEqual(submit["source_addr"], "1234")
            self.assertEqual(submit["esm_class"] & 0x40, 0x40)  # UDHI
            self.assertEqual(submit["registered_delivery"], 1)
            self.assertGreater(submit["short_message_length"], 0)
        # Each response answers one submit_sm (same sequence number) and
        # carries the SMSC's id, which each receipt is correlated back from.
        self.assertEqual(
            sorted(r["sequence_number"] for r in responses),
            sorted(s["sequence_number"] for s in submits),
        )
        smsc_ids = {r["message_id"] for r in responses}
        self.assertTrue(all(smsc_ids), responses)
        self.assertEqual({r["command_status"] for r in responses}, {"ESME_ROK"})
        self.assertEqual({r["receipted_message_id"] for r in receipts}, smsc_ids)
        self.assertEqual({r["correlated_message_id"] for r in receipts}, {message_id})
        # Oldest first: each submit_sm before its response (same sequence
        # number), each response before the receipt of the id it gave.
        details = [e.get("details", {}) for e in entries]
        for response in responses:
            sequence = response["sequence_number"]
            submitted = next(
                i
                for i, d in enumerate(details)
                if d.get("command") == "submit_sm" and d["sequence_number"] == sequence
            )
            self.assertLess(submitted, details.index(response))
            receipt = next(
                i
                for i, d in enumerate(details)
                if d.get("receipted_message_id") == response["message_id"]
            )
            self.assertLess(details.index(response), receipt)
        self.assertTrue(all(e["message_id"] == message_id for e in entries))
        # The events the forwarder posted are there too.
        messages = [e["message"] for e in entries]
        self.assertTrue(any("ack event received" in m for m in messages), messages)
        # No secret (nor the bind's system id) in any entry.
        text = json.dumps(entries)
        self.assertNotIn("secret", text)
        self.assertNotIn("esme1", text)

        code, body, _ = await api.request(
            "GET", f"/channels/{cid}/messages/no-such-message/logs"
        )
        self.assertEqual(code, 404, body)
        self.assertEqual(body["status"], 404)
        self.assertEqual(body["result"]["errors"][0]["type"], "MessageNotFound")
