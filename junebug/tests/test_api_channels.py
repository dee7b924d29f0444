"""The channels API against an in-process Junebug with in-memory backends."""

from __future__ import annotations

import json
from typing import Any

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from junebug.amqp import topology
from junebug.channels import service as channel_service
from junebug.testing.api import ApiDriver
from junebug.testing.polling import wait_until
from junebug.testing.stub_api import StubApi

FAKE = {"type": "fake", "config": {}, "mo_url": "http://127.0.0.1:1/mo"}


class ChannelsApiTests(TestCase):
    """Driven through StubTreq on a fake clock: no sockets, no waiting."""

    async def start(self, **overrides: Any) -> StubApi:
        driver = StubApi()
        self.addCleanup(driver.stop)
        await driver.start(**overrides)
        return driver

    async def test_envelope_on_list(self) -> None:
        """GET /channels/ answers the envelope with an empty sorted list."""
        api = await self.start()
        code, body, headers = await api.request("GET", "/channels/")
        self.assertEqual(code, 200)
        self.assertEqual(
            body,
            {
                "status": 200,
                "code": "OK",
                "description": "channels listed",
                "result": [],
            },
        )
        self.assertEqual(headers.getRawHeaders("content-type"), ["application/json"])

    async def test_create_echoes_properties_and_fresh_status(self) -> None:
        """A created channel echoes every posted key, with an id and a fresh status."""
        api = await self.start()
        code, body, _ = await api.request(
            "POST", "/channels/", {**FAKE, "label": "L", "extra_field": 1}
        )
        self.assertEqual(code, 201)
        self.assertEqual(body["code"], "Created")
        self.assertEqual(body["description"], "channel created")
        result = body["result"]
        self.assertEqual(result["label"], "L")
        self.assertEqual(result["extra_field"], 1)
        self.assertEqual(
            result["status"],
            {
                "status": None,
                "components": {},
                "inbound_message_rate": 0,
                "outbound_message_rate": 0,
                "submitted_event_rate": 0,
                "rejected_event_rate": 0,
                "delivery_succeeded_rate": 0,
                "delivery_failed_rate": 0,
                "delivery_pending_rate": 0,
                "queue": {
                    "paused": False,
                    "waiting": 0,
                    "send_rate": 0,
                    "priorities": {
                        str(p): {"waiting": 0, "drain_seconds": 0}
                        for p in (5, 4, 3, 2, 1)
                    },
                },
            },
        )
        code, listed, _ = await api.request("GET", "/channels/")
        self.assertEqual(listed["result"], [result["id"]])
        code, found, _ = await api.request("GET", f"/channels/{result['id']}")
        self.assertEqual((code, found["description"]), (200, "channel found"))
        self.assertEqual(found["result"]["id"], result["id"])

    async def test_create_schema_errors_sorted(self) -> None:
        """Every schema error is listed, sorted by message, with its schema path."""
        api = await self.start()
        code, body, _ = await api.request("POST", "/channels/", {})
        self.assertEqual(code, 400)
        self.assertEqual(body["description"], "api usage error")
        self.assertEqual(
            body["result"]["errors"],
            [
                {
                    "type": "invalid_body",
                    "message": "'config' is a required property",
                    "schema_path": ["required"],
                },
                {
                    "type": "invalid_body",
                    "message": "'type' is a required property",
                    "schema_path": ["required"],
                },
            ],
        )
        code, body, _ = await api.request(
            "POST",
            "/channels/",
            {
                "type": "fake",
                "config": {},
                "rate_limit_count": -3,
                "character_limit": "a",
            },
        )
        self.assertEqual(
            [(e["message"], e["schema_path"]) for e in body["result"]["errors"]],
            [
                (
                    "'a' is not of type 'integer'",
                    ["properties", "character_limit", "type"],
                ),
                (
                    "-3 is less than the minimum of 0",
                    ["properties", "rate_limit_count", "minimum"],
                ),
            ],
        )
        code, body, _ = await api.request("POST", "/channels/", [])
        self.assertEqual(
            body["result"]["errors"][0]["message"], "[] is not of type 'object'"
        )

    async def test_amqp_queue_refused_as_rabbitmq_would(self) -> None:
        """An amqp_queue RabbitMQ would refuse is a 400, and nothing is stored."""
        api = await self.start()
        bad_names = [
            ("q" * 240, "must be at most 239 bytes of UTF-8, not 240"),
            ("é" * 120, "must be at most 239 bytes of UTF-8, not 240"),
            ("amq.mine", 'must not start with "amq." (reserved by RabbitMQ)'),
            ("\ud800", "must be valid Unicode text (no lone surrogates)"),
        ]
        _, created, _ = await api.request(
            "POST", "/channels/", {**FAKE, "amqp_queue": "q" * 239}
        )
        cid = created["result"]["id"]
        for name, problem in bad_names:
            raw = json.dumps({**FAKE, "amqp_queue": name}).encode()
            for path in ("/channels/", f"/channels/{cid}"):
                code, body, _ = await api.request("POST", path, raw=raw)
                self.assertEqual(code, 400, (path, name))
                self.assertEqual(body["description"], "api usage error")
                self.assertEqual(
                    body["result"]["errors"],
                    [
                        {
                            "type": "invalid_body",
                            "message": f"amqp_queue {problem}",
                            "schema_path": ["properties", "amqp_queue"],
                        }
                    ],
                )
        _, listed, _ = await api.request("GET", "/channels/")
        self.assertEqual(listed["result"], [cid])
        _, found, _ = await api.request("GET", f"/channels/{cid}")
        self.assertEqual(found["result"]["amqp_queue"], "q" * 239)

    async def test_invalid_json(self) -> None:
        """A body that is not JSON is a 400 json decode error."""
        api = await self.start()
        for raw in (b"{", b"", b"\xff\xfe"):
            code, body, _ = await api.request("POST", "/channels/", raw=raw)
            self.assertEqual(code, 400)
            self.assertEqual(body["description"], "json decode error")
            self.assertEqual(body["result"]["errors"][0]["type"], "JsonDecodeError")

    async def test_invalid_type_and_config(self) -> None:
        """Unknown types and bad transport config are 400s naming the problem."""
        api = await self.start()
        code, body, _ = await api.request(
            "POST", "/channels/", {"type": "nope", "config": {}}
        )
        self.assertEqual((code, body["description"]), (400, "invalid channel type"))
        error = body["result"]["errors"][0]
        self.assertEqual(error["type"], "InvalidChannelType")
        self.assertIn("Invalid channel type 'nope', must be one of: ", error["message"])
        self.assertIn("fake", error["message"])
        self.assertIn("telnet", error["message"])
        code, body, _ = await api.request(
            "POST", "/channels/", {"type": "fake", "config": {"number": "x"}}
        )
        self.assertEqual((code, body["description"]), (400, "invalid channel config"))
        self.assertIn("config.number", body["result"]["errors"][0]["message"])
        code, listed, _ = await api.request("GET", "/channels/")
        self.assertEqual(listed["result"], [])

    async def test_unknown_channel_404s(self) -> None:
        """Every channel endpoint answers 404 ChannelNotFound for an unknown id."""
        api = await self.start()
        for method, path, body in [
            ("GET", "/channels/foo-bar", None),
            ("POST", "/channels/foo-bar", {}),
            ("DELETE", "/channels/foo-bar", None),
            ("POST", "/channels/foo-bar/restart", None),
            ("GET", "/channels/foo-bar/logs", None),
            ("POST", "/channels/foo-bar/messages/", {"to": "+1", "content": "x"}),
            ("GET", "/channels/foo-bar/messages/abc", None),
        ]:
            code, result, _ = await api.request(method, path, body)
            self.assertEqual(code, 404, (method, path))
            self.assertEqual(
                result["result"],
                {"errors": [{"type": "ChannelNotFound", "message": ""}]},
            )

    async def test_validation_before_lookup(self) -> None:
        """Schema errors win over a missing channel, as in the original."""
        api = await self.start()
        code, body, _ = await api.request(
            "POST",
            "/channels/foo-bar",
            {"rate_limit_count": -3, "character_limit": "a"},
        )
        self.assertEqual(code, 400)
        self.assertEqual(len(body["result"]["errors"]), 2)
        code, body, _ = await api.request(
            "POST", "/channels/foo-bar", {"status_url": 5}
        )
        self.assertEqual(
            body["result"]["errors"][0]["message"], "5 is not of type 'string', 'null'"
        )

    async def test_modify_merges_and_restarts_only_when_needed(self) -> None:
        """Modify merges top-level keys; metadata alone does not restart the transport."""
        api = await self.start()
        _, created, _ = await api.request("POST", "/channels/", FAKE)
        cid = created["result"]["id"]
        first = api.transport(cid)
        code, body, _ = await api.request(
            "POST", f"/channels/{cid}", {"metadata": {"foo": "bar"}}
        )
        self.assertEqual((code, body["description"]), (200, "channel updated"))
        self.assertEqual(body["result"]["metadata"], {"foo": "bar"})
        self.assertEqual(body["result"]["type"], "fake")
        self.assertIs(api.transport(cid), first)
        self.assertFalse(first.stopped)
        code, body, _ = await api.request(
            "POST", f"/channels/{cid}", {"config": {"number": 2}}
        )
        self.assertEqual(code, 200)
        self.assertTrue(first.stopped)
        self.assertEqual(api.transport(cid).config.number, 2)
        _, found, _ = await api.request("GET", f"/channels/{cid}")
        self.assertEqual(found["result"]["config"], {"number": 2})
        self.assertEqual(found["result"]["metadata"], {"foo": "bar"})

    async def test_delete_and_restart(self) -> None:
        """Delete stops and forgets a channel; restart stops then starts it."""
        api = await self.start()
        _, created, _ = await api.request("POST", "/channels/", FAKE)
        cid = created["result"]["id"]
        first = api.transport(cid)
        code, body, _ = await api.request("POST", f"/channels/{cid}/restart")
        self.assertEqual(
            (code, body["description"], body["result"]), (200, "channel restarted", {})
        )
        self.assertTrue(first.stopped)
        second = api.transport(cid)
        self.assertIsNot(first, second)
        self.assertTrue(second.started)
        code, body, _ = await api.request("DELETE", f"/channels/{cid}")
        self.assertEqual(
            (code, body["description"], body["result"]), (200, "channel deleted", {})
        )
        self.assertTrue(second.stopped)
        code, _, _ = await api.request("DELETE", f"/channels/{cid}")
        self.assertEqual(code, 404)
        _, listed, _ = await api.request("GET", "/channels/")
        self.assertEqual(listed["result"], [])

    async def test_delete_deletes_the_channel_queues(self) -> None:
        """Deleting a channel deletes its queues and the messages waiting there."""
        api = await self.start()
        assert api.junebug is not None
        broker = api.junebug.broker
        _, created, _ = await api.request(
            "POST", "/channels/", {"type": "fake", "config": {}}
        )
        cid = created["result"]["id"]
        await api.transport(cid).receive("waits for a router")
        self.assertEqual(broker.pending(topology.inbound(cid)), 1)
        await api.request("DELETE", f"/channels/{cid}")
        left = [
            queue
            for queue in topology.owned_queues(cid, with_status=True)
            if broker.has_queue(queue)
        ]
        self.assertEqual(left, [])

    async def test_unrouted_messages_expire(self) -> None:
        """MO and events of a channel without destination wait for a router at
        most ROUTER_WAIT_TTL; a channel with mo_url is not affected."""
        self.patch(channel_service, "ROUTER_WAIT_TTL", 0)
        api = await self.start()
        assert api.junebug is not None
        broker = api.junebug.broker
        _, created, _ = await api.request(
            "POST", "/channels/", {"type": "fake", "config": {}}
        )
        cid = created["result"]["id"]
        await api.transport(cid).receive("nobody routes this")
        self.assertEqual(broker.pending(topology.inbound(cid)), 0)
        self.assertTrue(broker.has_queue(topology.inbound(cid)))

    async def test_failed_transport_reports_down_and_can_be_deleted(self) -> None:
        """A transport that fails to start leaves the channel down, not the API."""
        self.addCleanup(self.flushLoggedErrors, RuntimeError)
        api = await self.start()
        code, created, _ = await api.request(
            "POST", "/channels/", {**FAKE, "config": {"fail_start": True}}
        )
        self.assertEqual(code, 201)
        status = created["result"]["status"]
        self.assertEqual(status["status"], "down")
        self.assertEqual(status["components"]["transport"]["type"], "start_failed")
        cid = created["result"]["id"]
        code, _, _ = await api.request("POST", f"/channels/{cid}", {"config": {}})
        self.assertEqual(code, 200)
        _, found, _ = await api.request("GET", f"/channels/{cid}")
        self.assertIsNone(found["result"]["status"]["status"])
        code, _, _ = await api.request("DELETE", f"/channels/{cid}")
        self.assertEqual(code, 200)

    async def test_routing_errors(self) -> None:
        """Unknown URLs, wrong methods and missing slashes use the envelope."""
        api = await self.start()
        code, body, _ = await api.request("GET", "/foobar")
        self.assertEqual(code, 404)
        self.assertEqual(body["code"], "Not Found")
        self.assertEqual(
            body["description"],
            "The requested URL was not found on the server. If you entered the URL "
            "manually please check your spelling and try again.",
        )
        error = body["result"]["errors"][0]
        self.assertEqual((error["type"], error["code"]), ("Not Found", 404))
        self.assertTrue(error["message"].startswith("404 Not Found: The requested URL"))
        code, body, headers = await api.request("GET", "/channels")
        self.assertEqual(code, 308)
        self.assertIsNone(body["description"])
        error = body["result"]["errors"][0]
        self.assertEqual(error["type"], "Permanent Redirect")
        self.assertEqual(error["message"], "308 Permanent Redirect: None")
        # Relative: an absolute URL would repeat the client's Host.
        self.assertEqual(error["new_url"], "/channels/")
        self.assertEqual(headers.getRawHeaders("location"), ["/channels/"])
        code, body, _ = await api.request("PUT", "/channels/")
        self.assertEqual(code, 405)
        self.assertEqual(body["result"]["errors"][0]["type"], "Method Not Allowed")
        for path in ("/health/", "/channels/abc/"):
            code, _, _ = await api.request("GET", path)
            self.assertEqual(code, 404)

    async def test_health(self) -> None:
        """/health answers health ok without a management interface."""
        api = await self.start()
        code, body, _ = await api.request("GET", "/health")
        self.assertEqual(
            (code, body["description"], body["result"]), (200, "health ok", {})
        )

    async def test_oversized_body(self) -> None:
        """A body over max_body_size is a 413 in the envelope."""
        api = await self.start(max_body_size=100)
        code, body, _ = await api.request(
            "POST", "/channels/", {**FAKE, "label": "x" * 200}
        )
        self.assertEqual(code, 413)
        self.assertEqual(body["result"]["errors"][0]["type"], "BodyTooLarge")

    async def test_channels_survive_restart_of_the_store(self) -> None:
        """Stored channels are started again when Junebug starts."""
        api = await self.start()
        assert api.junebug is not None
        _, created, _ = await api.request("POST", "/channels/", FAKE)
        cid = created["result"]["id"]
        registry = api.junebug.channels
        await registry.stop_all()
        self.assertEqual(registry.running_ids(), [])
        await registry.start_all()
        self.assertEqual(registry.running_ids(), [cid])


class ChannelLogsApiTests(TestCase):
    """The logs endpoints read files in Twisted's thread pool: a real reactor."""

    async def start(self) -> ApiDriver:
        driver = ApiDriver(reactor)
        self.addCleanup(driver.stop)
        await driver.start()
        return driver

    async def test_logs_endpoint(self) -> None:
        """The logs endpoint validates n and returns the channel's own entries."""
        api = await self.start()
        _, created, _ = await api.request("POST", "/channels/", FAKE)
        cid = created["result"]["id"]
        await wait_until(lambda: True)
        code, body, _ = await api.request("GET", f"/channels/{cid}/logs?n=2")
        self.assertEqual((code, body["description"]), (200, "logs retrieved"))
        self.assertLessEqual(len(body["result"]), 2)
        self.assertTrue(all(entry["logger"] == cid for entry in body["result"]))
        code, body, _ = await api.request("GET", f"/channels/{cid}/logs?n=abc")
        self.assertEqual(code, 400)
        self.assertEqual(body["result"]["errors"][0]["type"], "ApiUsageError")
