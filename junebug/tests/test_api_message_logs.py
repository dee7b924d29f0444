"""The message logs routes, over a fake channel and a router destination."""

from __future__ import annotations

from typing import Any

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from junebug.testing.api import ApiDriver
from junebug.testing.http_sink import HttpSink
from junebug.testing.polling import poll_until


class MessageLogsApiTests(TestCase):
    timeout = 30

    async def setUp(self) -> None:
        self.sink = HttpSink(reactor)
        self.sink_base = await self.sink.start()
        self.addCleanup(self.sink.stop)
        self.api = ApiDriver(reactor)
        self.addCleanup(self.api.stop)
        await self.api.start()

    async def create(self, path: str, body: dict[str, Any]) -> str:
        code, created, _ = await self.api.request("POST", path, body)
        self.assertEqual(code, 201, created)
        new_id: str = created["result"]["id"]
        return new_id

    async def logs_with(self, path: str, text: str) -> list[dict[str, Any]]:
        async def found() -> list[dict[str, Any]] | None:
            code, body, _ = await self.api.request("GET", path)
            self.assertEqual(code, 200, body)
            entries: list[dict[str, Any]] = body["result"]
            messages = [e["message"] for e in entries]
            return entries if any(text in m for m in messages) else None

        entries: list[dict[str, Any]] = await poll_until(found)
        return entries

    async def test_channel_message_logs(self) -> None:
        """The ack and its callback are in the message's log, oldest first."""
        cid = await self.create(
            "/channels/", {"type": "fake", "config": {}, "amqp_queue": "q"}
        )
        code, sent, _ = await self.api.request(
            "POST",
            f"/channels/{cid}/messages/",
            {"to": "+2782", "content": "hi", "event_url": self.sink_base + "/ev"},
        )
        self.assertEqual(code, 201, sent)
        message_id = sent["result"]["message_id"]
        path = f"/channels/{cid}/messages/{message_id}/logs"
        entries = await self.logs_with(path, "Posted submitted event")
        messages = [e["message"] for e in entries]
        self.assertEqual(messages[0], "ack event received")
        self.assertIn("HTTP 200", messages[1])
        self.assertEqual(entries[0]["details"]["event_type"], "ack")
        self.assertEqual({e["logger"] for e in entries}, {cid})

    async def test_known_message_without_logs_is_empty(self) -> None:
        cid = await self.create(
            "/channels/", {"type": "fake", "config": {}, "amqp_queue": "q"}
        )
        assert self.api.junebug is not None
        await self.api.junebug.channels.deps.messages.store_outbound(
            cid, "quiet", {"id": "quiet"}
        )
        code, body, _ = await self.api.request(
            "GET", f"/channels/{cid}/messages/quiet/logs"
        )
        self.assertEqual((code, body["result"]), (200, []))

    async def test_unknown_message_or_channel(self) -> None:
        cid = await self.create(
            "/channels/", {"type": "fake", "config": {}, "amqp_queue": "q"}
        )
        code, body, _ = await self.api.request(
            "GET", f"/channels/{cid}/messages/never/logs"
        )
        self.assertEqual((code, body["description"]), (404, "message not found"))
        self.assertEqual(body["result"]["errors"][0]["type"], "MessageNotFound")
        code, body, _ = await self.api.request(
            "GET", "/channels/nope/messages/never/logs"
        )
        self.assertEqual((code, body["description"]), (404, "channel not found"))

    async def test_destination_message_logs(self) -> None:
        """A message sent through a destination: its events as the
        destination's forwarder saw them."""
        cid = await self.create("/channels/", {"type": "fake", "config": {}})
        rid = await self.create(
            "/routers/", {"type": "from_address", "config": {"channel": cid}}
        )
        did = await self.create(
            f"/routers/{rid}/destinations/",
            {"config": {"regular_expression": "^1"}, "mo_url": self.sink_base},
        )
        base = f"/routers/{rid}/destinations/{did}"
        code, sent, _ = await self.api.request(
            "POST",
            base + "/messages/",
            {"to": "+2782", "content": "hi", "event_url": self.sink_base + "/ev"},
        )
        self.assertEqual(code, 201, sent)
        message_id = sent["result"]["message_id"]
        entries = await self.logs_with(
            f"{base}/messages/{message_id}/logs", "ack event received"
        )
        self.assertEqual(entries[0]["logger"], did)
        code, body, _ = await self.api.request("GET", f"{base}/messages/never/logs")
        self.assertEqual(code, 404, body)
        code, body, _ = await self.api.request(
            "GET", f"/routers/{rid}/destinations/nope/messages/{message_id}/logs"
        )
        self.assertEqual((code, body["description"]), (404, "destination not found"))

    async def test_in_the_openapi_document(self) -> None:
        """Both routes are listed, with their path parameters and no ``n``."""
        code, body, _ = await self.api.request("GET", "/openapi.json")
        self.assertEqual(code, 200)
        for path in (
            "/channels/{channel_id}/messages/{message_id}/logs",
            "/routers/{router_id}/destinations/{destination_id}"
            "/messages/{message_id}/logs",
        ):
            operation = body["paths"][path]["get"]
            names = [p["name"] for p in operation["parameters"]]
            self.assertNotIn("n", names)
            self.assertIn("message_id", names)
        channel_logs = body["paths"]["/channels/{channel_id}/logs"]["get"]
        self.assertIn("n", [p["name"] for p in channel_logs["parameters"]])
