"""Priorities, pause/resume and cancel on an in-memory Junebug (fake clock):
the parts the SMPP integration tests (``integration/test_traffic_smpp.py``)
do not reach: validation, queue choice, another process's pause, the
cancellation of prefetched messages, queue length estimates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase

from junebug.amqp import topology
from junebug.amqp.memory import MemoryBroker
from junebug.channels.queues import SENT_RATE, queue_length
from junebug.channels.traffic import PAUSE_POLL
from junebug.messages import user_message
from junebug.stores.memory import MemoryBackend
from junebug.stores.rates import RateStore
from junebug.stores.traffic import TrafficState, TrafficStore
from junebug.testing.stub_api import StubApi


class TrafficApiTests(TestCase):
    async def setUp(self) -> None:
        self.api = StubApi()
        self.addCleanup(self.api.stop)
        junebug = self.junebug = await self.api.start()
        self.broker: Any = junebug.channels.deps.broker
        self.traffic: TrafficStore = junebug.channels.deps.traffic
        _, body, _ = await self.api.request(
            "POST",
            "/channels/",
            {"type": "fake", "config": {}, "mo_url": "http://127.0.0.1:9/mo"},
        )
        self.cid: str = body["result"]["id"]
        self.transport = self.api.transport(self.cid)

    async def send(self, expect: int = 201, **body: Any) -> Any:
        code, answer, _ = await self.api.request(
            "POST",
            f"/channels/{self.cid}/messages/",
            {"to": "+27820000001", "content": "hi", **body},
        )
        self.assertEqual(code, expect, answer)
        return answer

    def waiting(self, priority: int) -> list[Any]:
        return self.broker.queue_messages(topology.outbound_at(self.cid, priority))

    async def pause(self) -> None:
        code, body, _ = await self.api.request("POST", f"/channels/{self.cid}/pause")
        self.assertEqual((code, body["description"]), (200, "channel paused"))

    async def test_priority_is_validated(self) -> None:
        """1 to 5 (or the strings "1" to "5") are accepted; anything else is
        a 400 naming ``priority``."""
        for bad in (0, 6, "high", 1.5, "", None, [5]):
            body = await self.send(expect=400, priority=bad)
            paths = [e["schema_path"][:2] for e in body["result"]["errors"]]
            self.assertIn(["properties", "priority"], paths, bad)
        await self.pause()
        for good in (1, 5, "3"):
            await self.send(priority=good)
        self.assertEqual(
            [len(self.waiting(p)) for p in topology.PRIORITIES], [1, 0, 1, 0, 1]
        )

    async def test_replies_default_to_priority_5(self) -> None:
        """A reply goes to ``.outbound.p5`` unless it says otherwise; any other
        message to ``.outbound`` (priority 1); the record keeps the priority."""
        await self.pause()
        inbound = await self.transport.receive("question")
        self.api.advance(0)
        plain = await self.send()
        reply = await self.send(reply_to=inbound["message_id"])
        slow_reply = await self.send(reply_to=inbound["message_id"], priority=2)
        ids = {p: [m["message_id"] for m in self.waiting(p)] for p in (1, 2, 5)}
        self.assertEqual(
            ids,
            {
                1: [plain["result"]["message_id"]],
                2: [slow_reply["result"]["message_id"]],
                5: [reply["result"]["message_id"]],
            },
        )
        record = await self.junebug.channels.deps.messages.load_outbound(
            self.cid, reply["result"]["message_id"]
        )
        self.assertEqual(record["priority"], 5)

    async def test_vumi_application_publishing_to_outbound_is_sent(self) -> None:
        """A vumi application publishing to ``<id>.outbound`` (no priority,
        no outbound record) is served as priority 1, as before."""
        message = user_message(
            to_addr="+1", from_addr="+2", content="from vumi", transport_name=self.cid
        )
        await self.broker.publish(topology.outbound(self.cid), message)
        self.api.advance(0)
        self.assertEqual([m["content"] for m in self.transport.outbound], ["from vumi"])

    async def test_higher_priorities_are_consumed_first(self) -> None:
        """Released together, the priority-5 queue is served first."""
        await self.pause()
        for i in range(3):
            await self.send(content=f"bulk {i}")
        await self.send(content="urgent", priority=5)
        await self.api.request("POST", f"/channels/{self.cid}/resume")
        self.api.advance(0)
        contents = [m["content"] for m in self.transport.outbound]
        self.assertEqual(contents[0], "urgent")
        self.assertEqual(sorted(contents[1:]), ["bulk 0", "bulk 1", "bulk 2"])

    async def test_pause_asked_by_another_process(self) -> None:
        """A pause stored by another process holds once this one reads it
        (the message goes back to its queue); a resume stored elsewhere is
        seen within PAUSE_POLL seconds."""
        channel = self.junebug.channels.running(self.cid)
        await self.traffic.set_paused(self.cid, True)
        self.api.advance(1.0)  # the state known to the channel gets stale
        await self.send(content="held")
        self.api.advance(0)
        self.assertEqual(self.transport.outbound, [])
        self.assertTrue(channel.paused)
        self.api.advance(1.0)  # the requeue-later pause
        self.assertEqual(len(self.waiting(1)), 1)
        await self.traffic.set_paused(self.cid, False)
        self.api.advance(PAUSE_POLL)
        self.api.advance(0)
        self.assertEqual([m["content"] for m in self.transport.outbound], ["held"])
        self.assertFalse(channel.paused)

    async def message_status(self, message_id: str) -> Any:
        code, body, _ = await self.api.request(
            "GET", f"/channels/{self.cid}/messages/{message_id}"
        )
        self.assertEqual(code, 200, body)
        return body["result"]

    async def test_cancel_all_reaches_prefetched_messages(self) -> None:
        """A message already taken by the transport's consumer when a "cancel
        all" was recorded is cancelled by the outbound handler, not sent."""
        cutoff = datetime.now(UTC) + timedelta(seconds=5)
        await self.traffic.cancel_before(self.cid, (1,), cutoff)
        self.junebug.channels.running(self.cid).traffic.forget()
        sent = await self.send(content="too late")
        self.api.advance(0)
        self.api.advance(0)
        self.assertEqual(self.transport.outbound, [])
        status = await self.message_status(sent["result"]["message_id"])
        self.assertEqual(status["last_event_type"], "rejected")
        self.assertEqual(status["events"][0]["event_details"], {"reason": "cancelled"})
        later = await self.send(content="later", priority=2)
        self.api.advance(0)
        self.assertEqual([m["content"] for m in self.transport.outbound], ["later"])
        self.assertEqual(
            (await self.message_status(later["result"]["message_id"]))["events"][0][
                "event_type"
            ],
            "submitted",
        )

    async def test_cancel_one_twice_then_resume(self) -> None:
        """Cancelling again says it was already cancelled; the cancelled
        message is dropped when the channel resumes."""
        await self.pause()
        sent = await self.send(content="cancel me")
        path = f"/channels/{self.cid}/messages/{sent['result']['message_id']}"
        code, first, _ = await self.api.request("DELETE", path)
        self.assertEqual((code, first["result"]["already_cancelled"]), (200, False))
        code, again, _ = await self.api.request("DELETE", path)
        self.assertEqual((code, again["result"]["already_cancelled"]), (200, True))
        self.api.advance(0)
        await self.api.request("POST", f"/channels/{self.cid}/resume")
        self.api.advance(0)
        self.assertEqual(self.transport.outbound, [])
        self.assertEqual(self.waiting(1), [])
        status = await self.message_status(sent["result"]["message_id"])
        self.assertEqual([e["event_type"] for e in status["events"]], ["rejected"])

    async def test_cancel_all_older_than(self) -> None:
        """``older_than`` (seconds) spares the newer messages, which keep
        their order."""
        await self.pause()
        for i in range(3):
            await self.send(content=f"new {i}")
        code, body, _ = await self.api.request(
            "DELETE", f"/channels/{self.cid}/messages/?older_than=3600"
        )
        self.assertEqual((code, body["result"]["cancelled"]), (200, 0), body)
        self.assertEqual(
            [m["content"] for m in self.waiting(1)], ["new 0", "new 1", "new 2"]
        )
        code, body, _ = await self.api.request(
            "DELETE",
            f"/channels/{self.cid}/messages/?older_than=2000-01-01T00:00:00Z",
        )
        self.assertEqual((code, body["result"]["cancelled"]), (200, 0), body)
        self.assertEqual(body["result"]["before"], "2000-01-01 00:00:00.000000")

    async def test_deleting_a_paused_channel_forgets_its_pause(self) -> None:
        """The traffic record and the priority queues go with the channel."""
        await self.pause()
        await self.send(priority=5)
        code, _, _ = await self.api.request("DELETE", f"/channels/{self.cid}")
        self.assertEqual(code, 200)
        self.assertEqual(await self.traffic.load(self.cid), TrafficState())
        for priority in topology.PRIORITIES:
            queue = topology.outbound_at(self.cid, priority)
            self.assertFalse(self.broker.has_queue(queue), queue)

    async def test_unknown_channel_is_404(self) -> None:
        missing = "11111111-1111-1111-1111-111111111111"
        for method, path in (
            ("POST", f"/channels/{missing}/pause"),
            ("POST", f"/channels/{missing}/resume"),
            ("DELETE", f"/channels/{missing}/messages/"),
            ("DELETE", f"/channels/{missing}/messages/m1"),
        ):
            code, body, _ = await self.api.request(method, path)
            self.assertEqual(code, 404, (path, body))

    async def test_destination_message_priority(self) -> None:
        """A message sent through a router destination takes its priority
        to the channel's queue of that priority."""
        _, channel, _ = await self.api.request(
            "POST", "/channels/", {"type": "fake", "config": {}}
        )
        cid = channel["result"]["id"]
        _, router, _ = await self.api.request(
            "POST", "/routers/", {"type": "from_address", "config": {"channel": cid}}
        )
        rid = router["result"]["id"]
        _, dest, _ = await self.api.request(
            "POST",
            f"/routers/{rid}/destinations/",
            {"config": {"default": True}},
        )
        did = dest["result"]["id"]
        await self.api.request("POST", f"/channels/{cid}/pause")
        code, body, _ = await self.api.request(
            "POST",
            f"/routers/{rid}/destinations/{did}/messages/",
            {"to": "+1", "content": "via destination", "priority": 4},
        )
        self.assertEqual(code, 201, body)
        waiting = self.broker.queue_messages(topology.outbound_at(cid, 4))
        self.assertEqual([m["content"] for m in waiting], ["via destination"])


class QueueLengthTests(TestCase):
    async def test_waiting_and_drain_estimates(self) -> None:
        """Each priority's estimate counts the higher priorities sent first,
        at the send rate of the last complete window; paused: no estimate."""
        clock = Clock()
        broker = MemoryBroker(clock)
        backend = MemoryBackend(clock)
        rates = RateStore(backend, clock, window=10)
        traffic = TrafficStore(backend)
        for priority, count in ((1, 6), (5, 2)):
            queue = topology.outbound_at("c", priority)
            await broker.declare_queue(queue)
            for _ in range(count):
                await broker.publish(
                    queue,
                    user_message(
                        to_addr="+1", from_addr="+2", content="x", transport_name="c"
                    ),
                )
        for _ in range(40):
            await rates.increment("c", SENT_RATE)
        clock.advance(10)
        found = await queue_length(broker, rates, traffic, "c")
        self.assertEqual(found["send_rate"], 4.0)
        self.assertEqual(found["waiting"], 8)
        self.assertEqual(found["priorities"]["5"], {"waiting": 2, "drain_seconds": 0.5})
        self.assertEqual(found["priorities"]["3"], {"waiting": 0, "drain_seconds": 0.5})
        self.assertEqual(found["priorities"]["1"], {"waiting": 6, "drain_seconds": 2.0})
        await traffic.set_paused("c", True)
        paused = await queue_length(broker, rates, traffic, "c")
        self.assertEqual(paused["paused"], True)
        self.assertIsNone(paused["priorities"]["1"]["drain_seconds"])
