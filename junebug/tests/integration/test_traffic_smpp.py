"""Priorities, queue length, pause/resume and cancel of an ``smpp`` channel,
through the HTTP API, against the real ``smpp34`` SMSC peer, on this machine's
real Redis and RabbitMQ.

The channel sends at most ``mt_tps`` ``submit_sm`` a second, so that MT queue
up behind it: a backlog to overtake, watch drain, hold or cancel.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults
from twisted.trial.unittest import TestCase

from junebug.testing.polling import poll_until, wait_until
from junebug.tests.support.real_backends import real_backends
from junebug.tests.support.smpp_channel import SmppChannel, start_smpp_channel

#: The channel's prefetch (Junebug's default, per priority queue).
PREFETCH = 20


def texts(channel: SmppChannel) -> list[str]:
    """The text of each ``submit_sm`` the SMSC received, in order."""
    return [
        bytes.fromhex(submit["short_message"]).decode("latin-1")
        for submit in channel.peer.submits
    ]


class TrafficTests(TestCase):
    timeout = 120

    async def start(self, mt_tps: float, mode: str = "ack-only") -> SmppChannel:
        backends = await real_backends(self, reactor)
        return await start_smpp_channel(
            self,
            reactor,
            "smpp34",
            "/mo",
            mode=mode,
            config={"mt_tps": mt_tps, "window_size": 1},
            junebug=backends,
        )

    async def send(
        self, channel: SmppChannel, content: str, **fields: Any
    ) -> dict[str, Any]:
        code, body, _ = await channel.api.request(
            "POST",
            f"/channels/{channel.channel_id}/messages/",
            {"to": "27820000001", "content": content, **fields},
        )
        self.assertEqual(code, 201, body)
        result: dict[str, Any] = body["result"]
        return result

    async def send_many(
        self, channel: SmppChannel, contents: list[str], **fields: Any
    ) -> list[dict[str, Any]]:
        """Send in batches of 20 concurrent requests, in order by batch."""
        sent: list[dict[str, Any]] = []
        for start in range(0, len(contents), 20):
            batch = contents[start : start + 20]
            sent.extend(
                await gatherResults(
                    [
                        self.send_deferred(channel, content, **fields)
                        for content in batch
                    ]
                )
            )
        return sent

    def send_deferred(self, channel: SmppChannel, content: str, **fields: Any) -> Any:
        return Deferred.fromCoroutine(self.send(channel, content, **fields))

    async def queue(self, channel: SmppChannel) -> dict[str, Any]:
        code, found, _ = await channel.api.request(
            "GET", f"/channels/{channel.channel_id}"
        )
        self.assertEqual(code, 200, found)
        queue: dict[str, Any] = found["result"]["status"]["queue"]
        return queue

    async def post(self, channel: SmppChannel, action: str) -> tuple[int, Any]:
        code, body, _ = await channel.api.request(
            "POST", f"/channels/{channel.channel_id}/{action}"
        )
        return code, body

    async def test_priority_5_overtakes_200_bulk_and_queue_drains(self) -> None:
        """200 queued bulk then 5 priority-5: the 5 reach the SMSC before the
        remaining bulk (after at most the prefetched ones), and the queue
        length goes down as the backlog drains."""
        channel = await self.start(mt_tps=20)
        await self.send_many(channel, [f"bulk {i}" for i in range(200)])
        await self.send_many(channel, [f"urgent {i}" for i in range(5)], priority=5)
        accepted = len(channel.peer.submits)
        first = await self.queue(channel)
        await wait_until(lambda: len(channel.peer.submits) >= 205, timeout=60)
        order = texts(channel)
        urgent = [i for i, text in enumerate(order) if text.startswith("urgent")]
        self.assertEqual(len(urgent), 5, order)
        # Once the 5 were accepted, only the bulk already prefetched (or in
        # the transport's window of 1) was sent before the last of them
        # (which also comes after the 4 other urgent ones).
        bound = accepted + PREFETCH + 1 + 4
        self.assertLessEqual(max(urgent), bound, (accepted, order))
        bulk_after = [
            i
            for i, text in enumerate(order)
            if text.startswith("bulk") and i > max(urgent)
        ]
        self.assertGreater(len(bulk_after), 50, (accepted, urgent))
        self.assertGreater(first["priorities"]["1"]["waiting"], 0, first)
        self.assertEqual(len(order), 205)
        last = await poll_until(lambda: self._drained(channel), timeout=10)
        self.assertEqual(last["waiting"], 0)

    async def _drained(self, channel: SmppChannel) -> dict[str, Any] | None:
        queue = await self.queue(channel)
        return queue if queue["waiting"] == 0 else None

    async def test_queue_length_goes_down(self) -> None:
        """The waiting count of priority 1 falls as the channel sends, and its
        drain estimate is given once the send rate is known."""
        channel = await self.start(mt_tps=25)
        await self.send_many(channel, [f"bulk {i}" for i in range(120)])
        samples = []
        for _ in range(4):
            samples.append(await self.queue(channel))
            sent = len(channel.peer.submits)
            await wait_until(
                lambda sent=sent: len(channel.peer.submits) >= sent + 10, timeout=10
            )
        waiting = [sample["priorities"]["1"]["waiting"] for sample in samples]
        self.assertEqual(waiting, sorted(waiting, reverse=True), waiting)
        self.assertGreater(waiting[0], waiting[-1])
        self.assertEqual(samples[0]["priorities"]["5"]["waiting"], 0)
        estimated = [s for s in samples if s["priorities"]["1"]["drain_seconds"]]
        self.assertTrue(estimated or samples[-1]["send_rate"] == 0, samples)

    async def test_pause_holds_mo_flows_resume_releases_and_survives_restart(
        self,
    ) -> None:
        """While paused nothing reaches the SMSC (even across a channel
        restart, after which MO still arrives); resume sends everything."""
        channel = await self.start(mt_tps=0, mode="dlr")
        cid = channel.channel_id
        mo = await channel.sink.next(timeout=20)
        self.assertEqual(mo.path, "/mo")
        code, body = await self.post(channel, "pause")
        self.assertEqual((code, body["result"]), (200, {"paused": True}))
        held = await self.send_many(channel, [f"held {i}" for i in range(10)])
        queue = await self.queue(channel)
        self.assertEqual(queue["paused"], True)
        self.assertEqual(queue["priorities"]["1"]["waiting"], 10, queue)
        self.assertIsNone(queue["priorities"]["1"]["drain_seconds"])
        code, _, _ = await channel.api.request("POST", f"/channels/{cid}/restart")
        self.assertEqual(code, 200)
        # The restarted channel binds again; the peer sends an MO on a bind.
        mo = await channel.sink.next(timeout=20)
        self.assertEqual(mo.path, "/mo")
        self.assertEqual(texts(channel), [])
        self.assertEqual((await self.queue(channel))["paused"], True)
        code, body = await self.post(channel, "resume")
        self.assertEqual((code, body["result"]), (200, {"paused": False}))
        await wait_until(lambda: len(channel.peer.submits) >= 10, timeout=20)
        self.assertEqual(sorted(texts(channel)), sorted(f"held {i}" for i in range(10)))
        await poll_until(lambda: self._drained(channel), timeout=10)
        # Every delivery receipt handled before the channel stops.
        for message in held:
            await poll_until(lambda m=message: self._delivered(channel, m), timeout=20)

    async def _delivered(self, channel: SmppChannel, message: dict[str, Any]) -> bool:
        _, found, _ = await channel.api.request(
            "GET",
            f"/channels/{channel.channel_id}/messages/{message['message_id']}",
        )
        types = {event["event_type"] for event in found["result"]["events"]}
        return "delivery_succeeded" in types

    async def rejected_events(self, channel: SmppChannel, count: int) -> list[Any]:
        events = []
        while len(events) < count:
            received = await channel.sink.next(timeout=20)
            if received.path == "/ev" and received.body["event_type"] == "rejected":
                events.append(received.body)
        return events

    async def test_cancel_one_and_all(self) -> None:
        """Cancelled messages (one, then all of a priority, then the rest)
        each get a ``rejected`` event with reason ``cancelled`` at their
        event_url and never reach the SMSC; a sent one answers 409, an unknown
        one 404, bad parameters 400."""
        channel = await self.start(mt_tps=0, mode="ack-only")
        cid, api = channel.channel_id, channel.api
        event_url = channel.base + "/ev"
        sent_first = await self.send(channel, "goes out", event_url=event_url)
        await wait_until(lambda: len(channel.peer.submits) >= 1, timeout=20)
        code, body, _ = await api.request(
            "DELETE", f"/channels/{cid}/messages/{sent_first['message_id']}"
        )
        self.assertEqual(code, 409, body)
        code, body, _ = await api.request("DELETE", f"/channels/{cid}/messages/nope")
        self.assertEqual(code, 404, body)
        for query in ("priority=0", "priority=x", "older_than=soon", "older_than=-1"):
            code, body, _ = await api.request(
                "DELETE", f"/channels/{cid}/messages/?{query}"
            )
            self.assertEqual(code, 400, (query, body))
        await self.post(channel, "pause")
        one = await self.send(channel, "cancel me", event_url=event_url)
        bulk = await self.send_many(
            channel, [f"bulk {i}" for i in range(5)], event_url=event_url
        )
        urgent = await self.send_many(
            channel, [f"urgent {i}" for i in range(3)], event_url=event_url, priority=5
        )
        code, body, _ = await api.request(
            "DELETE", f"/channels/{cid}/messages/{one['message_id']}"
        )
        self.assertEqual((code, body["result"]["cancelled"]), (200, True), body)
        [event] = await self.rejected_events(channel, 1)
        self.assertEqual(event["message_id"], one["message_id"])
        self.assertEqual(event["event_details"]["reason"], "cancelled")
        code, body, _ = await api.request(
            "DELETE", f"/channels/{cid}/messages/?priority=5"
        )
        self.assertEqual((code, body["result"]["cancelled"]), (200, 3), body)
        events = await self.rejected_events(channel, 3)
        self.assertEqual(
            {e["message_id"] for e in events}, {m["message_id"] for m in urgent}
        )
        queue = await self.queue(channel)
        self.assertEqual(queue["priorities"]["5"]["waiting"], 0, queue)
        self.assertEqual(queue["priorities"]["1"]["waiting"], 6, queue)
        code, body, _ = await api.request("DELETE", f"/channels/{cid}/messages/")
        # The one cancelled first is dropped from the queue, not counted again.
        self.assertEqual((code, body["result"]["cancelled"]), (200, 5), body)
        events = await self.rejected_events(channel, 5)
        self.assertEqual(
            {e["message_id"] for e in events}, {m["message_id"] for m in bulk}
        )
        self.assertEqual((await self.queue(channel))["waiting"], 0)
        code, body, _ = await api.request(
            "GET", f"/channels/{cid}/messages/{one['message_id']}"
        )
        self.assertEqual(body["result"]["last_event_type"], "rejected", body)
        # Sent after the cancel: not cancelled, sent once resumed.
        await self.send(channel, "after", event_url=event_url)
        await self.post(channel, "resume")
        await wait_until(lambda: len(channel.peer.submits) >= 2, timeout=20)
        self.assertEqual(texts(channel), ["goes out", "after"])
