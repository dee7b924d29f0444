"""Sending MT, replies, events and MO forwarding through an in-process Junebug."""

from __future__ import annotations

from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.trial.unittest import TestCase

from junebug.errors import StoreUnavailable
from junebug.testing.api import ApiDriver
from junebug.testing.backends_away import StoreSwitch
from junebug.testing.http_sink import HttpSink
from junebug.testing.polling import wait_until
from junebug.testing.stub_api import StubApi
from junebug.testing.transports import FakeTransport

VIEW_KEYS = {
    "to",
    "from",
    "group",
    "message_id",
    "channel_id",
    "timestamp",
    "reply_to",
    "content",
    "channel_data",
}


class MessagesApiTests(TestCase):
    """MO and events delivered over real HTTP to a sink (a real reactor)."""

    async def setup(
        self, **overrides: Any
    ) -> tuple[ApiDriver, HttpSink, str, FakeTransport]:
        sink = HttpSink(reactor)
        base = await sink.start()
        self.addCleanup(sink.stop)
        api = ApiDriver(reactor)
        self.addCleanup(api.stop)
        await api.start(**overrides)
        props = {
            "type": "fake",
            "config": {},
            "mo_url": base.replace("http://", "http://user:pass@") + "/mo",
            "mo_url_auth_token": "tok",
        }
        props.update(overrides.pop("channel", {}) if "channel" in overrides else {})
        _, created, _ = await api.request("POST", "/channels/", props)
        self.sink_base = base
        cid = created["result"]["id"]
        return api, sink, cid, api.transport(cid)

    async def test_mo_forwarded_with_auth_then_reply(self) -> None:
        """MO reaches mo_url with Basic auth; a reply goes back to the sender."""
        api, sink, cid, transport = await self.setup()
        inbound = await transport.receive("hi", session_event="resume")
        received = await sink.next()
        self.assertEqual(received.path, "/mo")
        self.assertTrue(received.headers["authorization"].startswith("Basic "))
        self.assertEqual(received.body["message_id"], inbound["message_id"])
        self.assertEqual(received.body["channel_data"], {"session_event": "resume"})
        self.assertEqual(set(received.body), VIEW_KEYS)
        code, body, _ = await api.request(
            "POST",
            f"/channels/{cid}/messages/",
            {
                "reply_to": inbound["message_id"],
                "content": "hello again",
                "channel_data": {"continue_session": False},
            },
        )
        self.assertEqual(code, 201)
        self.assertEqual(body["result"]["to"], "+2781")
        self.assertEqual(body["result"]["from"], "+2780")
        self.assertEqual(body["result"]["reply_to"], inbound["message_id"])
        self.assertEqual(
            body["result"]["channel_data"],
            {"session_event": "close", "continue_session": False},
        )
        await wait_until(lambda: transport.outbound)
        self.assertEqual(transport.outbound[0]["in_reply_to"], inbound["message_id"])
        self.assertEqual(transport.outbound[0]["session_event"], "close")

    async def test_session_close_mo_is_forwarded(self) -> None:
        """Unlike the original, an MO that closes a session reaches mo_url."""
        _api, sink, _cid, transport = await self.setup()
        await transport.receive(None, session_event="close")
        received = await sink.next()
        self.assertEqual(received.body["channel_data"], {"session_event": "close"})

    async def test_token_auth_without_userinfo(self) -> None:
        """mo_url_auth_token is sent as Authorization: Token when no userinfo."""
        api, sink, cid, transport = await self.setup()
        await api.request(
            "POST", f"/channels/{cid}", {"mo_url": self.sink_base + "/mo2"}
        )
        transport = api.transport(cid)
        await transport.receive("hi")
        received = await sink.next()
        self.assertEqual(received.path, "/mo2")
        self.assertEqual(received.headers["authorization"], "Token tok")

    async def test_events_reach_event_url_and_status(self) -> None:
        """The submitted event reaches event_url with the token and message status."""
        api, sink, cid, _t = await self.setup()
        code, body, _ = await api.request(
            "POST",
            f"/channels/{cid}/messages/",
            {
                "to": "+1",
                "content": "x",
                "event_url": self.sink_base + "/ev",
                "event_auth_token": "etok",
            },
        )
        mid = body["result"]["message_id"]
        received = await sink.next()
        self.assertEqual(received.path, "/ev")
        self.assertEqual(received.headers["authorization"], "Token etok")
        self.assertEqual(received.body["event_type"], "submitted")
        self.assertEqual(received.body["message_id"], mid)
        self.assertEqual(received.body["channel_id"], cid)
        self.assertEqual(received.body["event_details"], {})
        code, status, _ = await api.request("GET", f"/channels/{cid}/messages/{mid}")
        self.assertEqual((code, status["description"]), (200, "message status"))
        self.assertEqual(status["result"]["id"], mid)
        self.assertEqual(status["result"]["last_event_type"], "submitted")
        self.assertEqual(len(status["result"]["events"]), 1)
        code, status, _ = await api.request("GET", f"/channels/{cid}/messages/unknown")
        self.assertEqual(
            status["result"],
            {
                "id": "unknown",
                "last_event_type": None,
                "last_event_timestamp": None,
                "events": [],
            },
        )

    def published_to(self, api: ApiDriver, routing_key: str) -> list[Any]:
        """Every message published to ``routing_key`` from now on."""
        assert api.junebug is not None
        broker = api.junebug.broker
        seen: list[Any] = []
        publish = broker.publish

        async def recording(key: str, message: Any, **kwargs: Any) -> None:
            if key == routing_key:
                seen.append(message)
            await publish(key, message, **kwargs)

        broker.publish = recording  # type: ignore[method-assign]
        return seen

    async def send_with_event_url(self, api: ApiDriver, cid: str) -> str:
        """Send an MT whose events go to the sink; its message id."""
        code, body, _ = await api.request(
            "POST",
            f"/channels/{cid}/messages/",
            {"to": "+1", "content": "x", "event_url": self.sink_base + "/ev"},
        )
        self.assertEqual(code, 201, body)
        message_id: str = body["result"]["message_id"]
        return message_id

    async def test_the_owner_hands_its_events_on_without_the_queue(self) -> None:
        """The process running the transport gives its events straight to the
        channel's forwarder: stored, POSTed, never published."""
        api, sink, cid, _t = await self.setup()
        published = self.published_to(api, f"{cid}.event")
        mid = await self.send_with_event_url(api, cid)
        received = await sink.next()
        self.assertEqual(received.body["event_type"], "submitted")
        self.assertEqual(published, [])
        _, status, _ = await api.request("GET", f"/channels/{cid}/messages/{mid}")
        self.assertEqual(status["result"]["last_event_type"], "submitted")
        assert api.junebug is not None
        channel = api.junebug.channels.running(cid)
        assert channel is not None and channel.event_handoff is not None
        self.assertEqual(channel.event_handoff.handed, 1)

    async def test_an_event_the_forwarder_cannot_take_goes_to_the_queue(
        self,
    ) -> None:
        """Redis away as the event is handed on: it is published instead, and
        delivered from the queue once Redis is back."""
        api, sink, cid, _t = await self.setup()
        assert api.junebug is not None
        published = self.published_to(api, f"{cid}.event")
        messages = api.junebug.channels.deps.messages
        store = messages.store_event_and_load_outbound
        failed = []

        async def failing_once(owner_id: str, event: Any) -> Any:
            if not failed:
                failed.append(event["event_id"])
                raise StoreUnavailable("Redis HSET_THEN_GET: Connection lost")
            return await store(owner_id, event)

        messages.store_event_and_load_outbound = failing_once  # type: ignore[method-assign]
        mid = await self.send_with_event_url(api, cid)
        received = await sink.next()
        self.assertEqual(received.body["event_type"], "submitted")
        self.assertEqual(received.body["message_id"], mid)
        self.assertEqual([event["event_id"] for event in published], failed)
        self.assertEqual(len(self.flushLoggedErrors(StoreUnavailable)), 1)

    async def test_a_slow_event_url_does_not_hold_sending_up(self) -> None:
        """An event_url that does not answer: the first hand-off gives up
        after handoff_timeout and publishes its event, the next event goes
        by the queue at once; once the URL answers, every event arrives (the
        first twice, as at-least-once allows)."""
        api, sink, cid, transport = await self.setup(handoff_timeout=0.05)
        assert api.junebug is not None
        channel = api.junebug.channels.running(cid)
        assert channel is not None and channel.event_handoff is not None
        handoff = channel.event_handoff
        published = self.published_to(api, f"{cid}.event")
        sink.holding = True
        first = await self.send_with_event_url(api, cid)
        await wait_until(lambda: len(published) == 1)
        second = await self.send_with_event_url(api, cid)
        await wait_until(lambda: len(published) == 2)
        self.assertEqual(len(transport.outbound), 2)
        self.assertEqual((handoff.handed, handoff.declined), (0, 2))
        await wait_until(lambda: len(sink.held) == 3)
        sink.release()
        received = [await sink.next() for _ in range(3)]
        by_message = sorted(r.body["message_id"] for r in received)
        self.assertEqual(by_message, sorted([first, first, second]))
        twice = [r.body for r in received if r.body["message_id"] == first]
        self.assertEqual(twice[0], twice[1])  # the same event, POSTed again
        await wait_until(lambda: handoff.in_flight == 0)

    async def test_the_owner_hands_mo_on_without_the_queue(self) -> None:
        """MO goes straight to the channel's forwarder too: stored (a reply
        finds it) and POSTed, never published."""
        api, sink, cid, transport = await self.setup()
        published = self.published_to(api, f"{cid}.inbound")
        inbound = await transport.receive("hi")
        received = await sink.next()
        self.assertEqual(received.body["message_id"], inbound["message_id"])
        self.assertEqual(published, [])
        code, _, _ = await api.request(
            "POST",
            f"/channels/{cid}/messages/",
            {"reply_to": inbound["message_id"], "content": "yes"},
        )
        self.assertEqual(code, 201)
        assert api.junebug is not None
        channel = api.junebug.channels.running(cid)
        assert channel is not None and channel.mo_handoff is not None
        self.assertEqual(channel.mo_handoff.handed, 1)

    async def test_mo_the_forwarder_cannot_take_goes_to_the_queue(self) -> None:
        """Redis away as an MO is handed on: it is published instead, and
        forwarded from the queue once Redis is back."""
        api, sink, cid, transport = await self.setup()
        assert api.junebug is not None
        switch = StoreSwitch(api.junebug.backend)
        published = self.published_to(api, f"{cid}.inbound")
        switch.away = True
        receiving = Deferred.fromCoroutine(transport.receive("hi"))
        await wait_until(lambda: published)
        switch.back()
        inbound = await receiving
        received = await sink.next()
        self.assertEqual(received.body["message_id"], inbound["message_id"])
        self.assertEqual([m["message_id"] for m in published], [inbound["message_id"]])
        # The hand-off's failure (and the consumer's, if it came too early).
        self.assertGreaterEqual(len(self.flushLoggedErrors(StoreUnavailable)), 1)

    async def test_nack_event_details(self) -> None:
        """A nack becomes a rejected event with the reason."""
        api, sink, cid, _t = await self.setup()
        await api.request(
            "POST", f"/channels/{cid}", {"config": {"nack_reason": "error error"}}
        )
        _, _body, _ = await api.request(
            "POST",
            f"/channels/{cid}/messages/",
            {"to": "+1", "content": "x", "event_url": self.sink_base + "/ev"},
        )
        received = await sink.next()
        self.assertEqual(received.body["event_type"], "rejected")
        self.assertEqual(received.body["event_details"], {"reason": "error error"})


class MessagesOnFakeClockTests(TestCase):
    """The same API driven through StubTreq on a fake clock (no sockets)."""

    async def setup(self, **overrides: Any) -> tuple[StubApi, str, FakeTransport]:
        api = StubApi()
        self.addCleanup(api.stop)
        await api.start(**overrides)
        _, created, _ = await api.request(
            "POST", "/channels/", {"type": "fake", "config": {}, "mo_url": "http://x/"}
        )
        cid = created["result"]["id"]
        return api, cid, api.transport(cid)

    async def test_send_publishes_and_answers_view(self) -> None:
        """A send answers 201 with exactly the API view and reaches the transport."""
        api, cid, transport = await self.setup()
        code, body, _ = await api.request(
            "POST",
            f"/channels/{cid}/messages/",
            {"to": "+1234", "content": "foo", "from": None, "group": "g"},
        )
        self.assertEqual(
            (code, body["code"], body["description"]),
            (201, "Created", "message submitted"),
        )
        result = body["result"]
        self.assertEqual(set(result), VIEW_KEYS)
        self.assertEqual(result["to"], "+1234")
        self.assertEqual(result["group"], "g")
        self.assertEqual(result["channel_id"], cid)
        self.assertEqual(result["channel_data"], {})
        api.advance(0)
        sent = transport.outbound[0]
        self.assertEqual(sent["message_id"], result["message_id"])
        self.assertEqual(sent["to_addr"], "+1234")
        self.assertEqual(sent["group"], "g")
        self.assertEqual(sent["message_version"], "20110921")

    async def test_send_checks_in_order(self) -> None:
        """Missing to/reply_to, unknown reply_to, extra keys and limits are 400s."""
        api, cid, _t = await self.setup()
        path = f"/channels/{cid}/messages/"
        code, body, _ = await api.request("POST", path, {"from": None, "content": None})
        self.assertEqual(code, 400)
        self.assertEqual(
            body["result"]["errors"],
            [
                {
                    "type": "ApiUsageError",
                    "message": 'Either "to" or "reply_to" must be specified',
                }
            ],
        )
        code, body, _ = await api.request(
            "POST", path, {"from": None, "content": None, "to": "", "foo": "bar"}
        )
        self.assertEqual(
            body["result"]["errors"][0]["message"],
            "Additional properties are not allowed ('foo' was unexpected)",
        )
        code, body, _ = await api.request(
            "POST", path, {"to": "+1234", "reply_to": "2e8u9ua8", "content": None}
        )
        self.assertEqual((code, body["description"]), (400, "message not found"))
        self.assertEqual(
            body["result"]["errors"][0]["message"],
            "Inbound message with id 2e8u9ua8 not found",
        )
        code, body, _ = await api.request("POST", path, {"to": "+1", "content": None})
        self.assertEqual(code, 400)
        self.assertEqual(body["result"]["errors"][0]["type"], "ApiUsageError")

    async def test_character_limit(self) -> None:
        """Content over character_limit is refused; content at the limit is sent."""
        api, cid, _t = await self.setup()
        await api.request("POST", f"/channels/{cid}", {"character_limit": 10})
        path = f"/channels/{cid}/messages/"
        code, body, _ = await api.request(
            "POST", path, {"to": "+1", "content": "Over the character limit."}
        )
        self.assertEqual((code, body["description"]), (400, "message too long"))
        self.assertEqual(
            body["result"]["errors"][0]["message"],
            "Message content 'Over the character limit.' is of length 25, which is "
            "greater than the character limit of 10",
        )
        code, _, _ = await api.request(
            "POST", path, {"to": "+1", "content": "0123456789"}
        )
        self.assertEqual(code, 201)
        code, body, _ = await api.request(
            "POST",
            path,
            {"to": "+1", "content": None, "channel_data": {"session_event": "close"}},
        )
        self.assertEqual(code, 201)

    async def test_channel_without_destination(self) -> None:
        """A channel with neither mo_url nor amqp_queue refuses sends and lookups."""
        api, _cid, _t = await self.setup()
        _, created, _ = await api.request(
            "POST", "/channels/", {"type": "fake", "config": {}}
        )
        cid = created["result"]["id"]
        for method, path, body in [
            ("POST", f"/channels/{cid}/messages/", {"to": "+1", "content": "x"}),
            ("GET", f"/channels/{cid}/messages/abc", None),
        ]:
            code, result, _ = await api.request(method, path, body)
            self.assertEqual(code, 400)
            self.assertEqual(
                result["result"]["errors"][0]["message"],
                'This channel has no "mo_url" or "amqp_queue"',
            )

    async def test_expired_reply_allowed(self) -> None:
        """With allow_expired_replies a reply to an unknown message goes to 'to'."""
        api, cid, _transport = await self.setup(allow_expired_replies=True)
        code, body, _ = await api.request(
            "POST",
            f"/channels/{cid}/messages/",
            {"to": "+1234", "reply_to": "2e8u9ua8", "content": "foo"},
        )
        self.assertEqual(code, 201)
        self.assertIsNone(body["result"]["reply_to"])
        self.assertEqual(body["result"]["to"], "+1234")

    async def test_rates(self) -> None:
        """Sends are counted into the outbound rate of the previous bucket:
        3 sends in a 10 s bucket are 0.3 per second once that bucket is over."""
        api = StubApi()
        self.addCleanup(api.stop)
        await api.start(metric_window=10.0)
        _, created, _ = await api.request(
            "POST", "/channels/", {"type": "fake", "config": {}, "mo_url": "http://x/"}
        )
        cid = created["result"]["id"]
        for _ in range(3):
            code, _, _ = await api.request(
                "POST", f"/channels/{cid}/messages/", {"to": "+1", "content": "x"}
            )
            self.assertEqual(code, 201)

        async def rate() -> Any:
            _, found, _ = await api.request("GET", f"/channels/{cid}")
            return found["result"]["status"]["outbound_message_rate"]

        self.assertEqual(await rate(), 0)
        api.advance(10.0)
        self.assertEqual(await rate(), 0.3)
        api.advance(10.0)
        self.assertEqual(await rate(), 0)
