"""``rate_limit_count`` / ``rate_limit_window`` through the API, on a Clock.

An embedded Junebug (memory backend and broker) with the fake transport,
which costs one unit per message.  A unit stays spent for the window plus
``rate_limit_margin`` (:data:`MARGIN` here).
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.trial.unittest import TestCase

from junebug.testing.stub_api import StubApi

MARGIN = 0.5
LIMITED = {
    "type": "fake",
    "config": {},
    "mo_url": "http://127.0.0.1:1/mo",
    "rate_limit_count": 3,
    "rate_limit_window": 10,
}


class RateLimitApiTests(TestCase):
    async def start(self) -> StubApi:
        api = StubApi()
        self.addCleanup(api.stop)
        await api.start(rate_limit_margin=MARGIN)
        return api

    async def create(self, api: StubApi, **properties: Any) -> str:
        code, created, _ = await api.request(
            "POST", "/channels/", {**LIMITED, **properties}
        )
        self.assertEqual(code, 201, created)
        return str(created["result"]["id"])

    async def send(self, api: StubApi, cid: str, count: int) -> list[str]:
        ids = []
        for n in range(count):
            code, sent, _ = await api.request(
                "POST", f"/channels/{cid}/messages/", {"to": "+27", "content": f"m{n}"}
            )
            self.assertEqual(code, 201, sent)
            ids.append(sent["result"]["message_id"])
        api.advance(0)
        return ids

    def sent(self, api: StubApi, cid: str) -> list[str]:
        return [m["message_id"] for m in api.transport(cid).outbound]

    async def status(self, api: StubApi, cid: str) -> dict[str, Any]:
        code, found, _ = await api.request("GET", f"/channels/{cid}")
        self.assertEqual(code, 200, found)
        return dict(found["result"]["status"])

    async def test_excess_waits_and_none_is_lost(self) -> None:
        """3 per 10 s: 7 messages go 3, 3, 1 a window apart, in order."""
        api = await self.start()
        cid = await self.create(api)
        ids = await self.send(api, cid, 7)
        self.assertEqual(self.sent(api, cid), ids[:3])
        api.advance(10 + MARGIN - 0.01)
        self.assertEqual(self.sent(api, cid), ids[:3])
        api.advance(0.01)
        self.assertEqual(self.sent(api, cid), ids[:6])
        api.advance(10 + MARGIN)
        self.assertEqual(self.sent(api, cid), ids)

    async def test_status_shows_the_limit_and_the_hold(self) -> None:
        api = await self.start()
        cid = await self.create(api)
        status = await self.status(api, cid)
        self.assertEqual(status["rate_limit"], {"count": 3, "window": 10})
        self.assertNotIn("rate_limit", status["components"])
        await self.send(api, cid, 5)
        status = await self.status(api, cid)
        component = status["components"]["rate_limit"]
        self.assertEqual(component["status"], "degraded")
        self.assertEqual(component["type"], "held_back")
        self.assertIn("held back by rate_limit_count", component["message"].lower())
        self.assertEqual(component["details"]["limit"], {"count": 3, "window": 10})
        self.assertEqual(status["status"], "degraded")
        api.advance(10 + MARGIN)
        status = await self.status(api, cid)
        self.assertEqual(
            status["components"]["rate_limit"]["status"],
            "degraded",
            "ok only after a whole window without waiting",
        )
        api.advance(10)
        status = await self.status(api, cid)
        self.assertEqual(status["components"]["rate_limit"]["status"], "ok")
        self.assertEqual(status["status"], "ok")

    async def test_unlimited_channel_has_no_rate_limit_in_status(self) -> None:
        api = await self.start()
        cid = await self.create(api, rate_limit_count=0)
        ids = await self.send(api, cid, 10)
        self.assertEqual(self.sent(api, cid), ids)
        self.assertNotIn("rate_limit", await self.status(api, cid))

    async def test_modify_applies_to_the_waiting_messages(self) -> None:
        """A new limit applies at once, without a restart and without losing
        or reordering what waits."""
        api = await self.start()
        cid = await self.create(api)
        transport = api.transport(cid)
        ids = await self.send(api, cid, 8)
        self.assertEqual(self.sent(api, cid), ids[:3])
        code, body, _ = await api.request(
            "POST", f"/channels/{cid}", {"rate_limit_count": 6}
        )
        self.assertEqual(code, 200, body)
        self.assertEqual(body["result"]["status"]["rate_limit"]["count"], 6)
        api.advance(0)
        self.assertIs(api.transport(cid), transport)
        self.assertEqual(self.sent(api, cid), ids[:6])
        code, body, _ = await api.request(
            "POST", f"/channels/{cid}", {"rate_limit_count": 0}
        )
        self.assertEqual(code, 200, body)
        api.advance(0)
        self.assertEqual(self.sent(api, cid), ids)

    async def test_restart_keeps_the_budget(self) -> None:
        """The budget is the channel's, not the transport's: a restarted
        channel (or one started by another process) goes on from it."""
        api = await self.start()
        cid = await self.create(api)
        ids = await self.send(api, cid, 3)
        code, _, _ = await api.request("POST", f"/channels/{cid}/restart")
        self.assertEqual(code, 200)
        more = await self.send(api, cid, 1)
        self.assertEqual(self.sent(api, cid), [])
        api.advance(10 + MARGIN)
        self.assertEqual(self.sent(api, cid), more)
        self.assertEqual(len(ids), 3)

    async def test_stopping_the_transport_gives_the_waiting_back(self) -> None:
        """A hand-over (the transport stops, the channel stays) does not wait
        for the window: the messages waiting for budget go back to their
        queue at once, and the transport started again sends them."""
        api = await self.start()
        cid = await self.create(api)
        ids = await self.send(api, cid, 5)
        assert api.junebug is not None
        channel = api.junebug.channels.running(cid)
        assert channel is not None
        stopping = Deferred.fromCoroutine(channel.stop_transport())
        api.advance(0)
        self.assertTrue(stopping.called, "stop_transport waited for the window")
        await stopping
        await channel.start_transport()
        api.advance(0)
        self.assertEqual(self.sent(api, cid), [])  # the budget is still spent
        api.advance(10 + MARGIN)
        self.assertEqual(sorted(self.sent(api, cid)), sorted(ids[3:]))

    async def test_wait_histogram(self) -> None:
        api = await self.start()
        cid = await self.create(api)
        await self.send(api, cid, 4)
        api.advance(10 + MARGIN)
        assert api.junebug is not None
        registry = api.junebug.metrics.registry
        labels = {"channel_id": cid}
        count = registry.get_sample_value(
            "junebug_rate_limit_wait_seconds_count", labels
        )
        total = registry.get_sample_value("junebug_rate_limit_wait_seconds_sum", labels)
        self.assertEqual((count, total), (4, 10 + MARGIN))
