"""Health checks, channel status events and connection state in the status."""

from __future__ import annotations

import json
from typing import Any

from twisted.internet import reactor
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.trial.unittest import TestCase
from twisted.web.resource import Resource
from twisted.web.server import Site

from junebug.amqp.memory import MemoryBroker
from junebug.errors import PublishOutcomeUnknown
from junebug.messages import Message, status_event
from junebug.testing.api import ApiDriver
from junebug.testing.http_sink import HttpSink


class FakeManagement(Resource):
    """Answers /api/queues/<vhost>/<name> like the RabbitMQ management API."""

    isLeaf = True

    def __init__(self, queues: dict[str, Any]) -> None:
        super().__init__()
        self.queues = queues
        self.auth: list[str | None] = []
        #: When set, every answer is (status code, raw body).
        self.broken: tuple[int, bytes] | None = None

    def render_GET(self, request: Any) -> bytes:
        self.auth.append(request.getHeader(b"authorization"))
        name = request.path.decode().rsplit("/", 1)[-1]
        if self.broken is not None:
            request.setResponseCode(self.broken[0])
            return self.broken[1]
        request.setHeader(b"content-type", b"application/json")
        if name not in self.queues:
            request.setResponseCode(404)
            return b'{"error": "Object Not Found", "reason": "Not Found"}'
        return json.dumps(self.queues[name]).encode()


class HealthAndStatusTests(TestCase):
    async def start(self, **overrides: Any) -> ApiDriver:
        driver = ApiDriver(reactor)
        self.addCleanup(driver.stop)
        await driver.start(**overrides)
        return driver

    async def test_health_fails_while_broker_down(self) -> None:
        """/health is a 503 naming the broker while it is disconnected."""
        api = await self.start()
        assert api.junebug is not None
        broker = api.junebug.broker
        assert isinstance(broker, MemoryBroker)
        broker.disconnect()
        code, body, _ = await api.request("GET", "/health")
        self.assertEqual(code, 503)
        self.assertEqual(body["result"]["errors"][0]["type"], "AmqpConnectionError")
        broker.reconnect()
        code, _, _ = await api.request("GET", "/health")
        self.assertEqual(code, 200)

    async def test_status_shows_broker_loss_and_send_is_503(self) -> None:
        """A lost broker shows as a down amqp component; sends answer 503."""
        api = await self.start()
        assert api.junebug is not None
        _, created, _ = await api.request(
            "POST", "/channels/", {"type": "fake", "config": {}, "mo_url": "http://x/"}
        )
        cid = created["result"]["id"]
        broker = api.junebug.broker
        assert isinstance(broker, MemoryBroker)
        broker.disconnect()
        _, found, _ = await api.request("GET", f"/channels/{cid}")
        status = found["result"]["status"]
        self.assertEqual(status["status"], "down")
        self.assertEqual(status["components"]["amqp"]["type"], "connection_lost")
        code, body, _ = await api.request(
            "POST", f"/channels/{cid}/messages/", {"to": "+1", "content": "x"}
        )
        self.assertEqual(code, 503)
        self.assertEqual(
            body["result"]["errors"][0],
            {
                "type": "AmqpConnectionError",
                "message": "Message not sent, AMQP connection error.",
            },
        )
        broker.reconnect()
        _, found, _ = await api.request("GET", f"/channels/{cid}")
        self.assertIsNone(found["result"]["status"]["status"])

    async def test_while_rabbitmq_blocks_sends_are_refused_and_health_says_so(
        self,
    ) -> None:
        """connection.blocked (a memory alarm): a send answers 503 at once and
        nothing is published, so a client may safely retry; /health names it."""
        api = await self.start()
        assert api.junebug is not None
        _, created, _ = await api.request(
            "POST", "/channels/", {"type": "fake", "config": {}, "mo_url": "http://x/"}
        )
        cid = created["result"]["id"]
        broker = api.junebug.broker
        assert isinstance(broker, MemoryBroker)
        broker.block("low on memory")
        code, body, _ = await api.request("GET", "/health")
        self.assertEqual(code, 503)
        self.assertEqual(
            body["result"]["errors"],
            [
                {
                    "type": "AmqpBlocked",
                    "message": "RabbitMQ blocks publishing: low on memory",
                }
            ],
        )
        code, body, _ = await api.request(
            "POST", f"/channels/{cid}/messages/", {"to": "+1", "content": "x"}
        )
        self.assertEqual(code, 503)
        self.assertEqual(body["result"]["errors"][0]["type"], "AmqpConnectionError")
        self.assertEqual(broker.queue_messages(f"{cid}.outbound"), [])
        broker.unblock()
        code, _, _ = await api.request("GET", "/health")
        self.assertEqual(code, 200)

    async def test_a_sent_but_unconfirmed_message_is_a_504(self) -> None:
        """Written to RabbitMQ but never confirmed: the outcome is unknown, so
        the answer is a 504 that tells the client not to resend blindly."""
        api = await self.start()
        assert api.junebug is not None
        _, created, _ = await api.request(
            "POST", "/channels/", {"type": "fake", "config": {}, "mo_url": "http://x/"}
        )
        cid = created["result"]["id"]

        async def unconfirmed(routing_key: str, message: Message) -> None:
            raise PublishOutcomeUnknown("confirm timed out after 30s")

        self.patch(api.junebug.broker, "publish", unconfirmed)
        code, body, _ = await api.request(
            "POST", f"/channels/{cid}/messages/", {"to": "+1", "content": "x"}
        )
        self.assertEqual(code, 504)
        self.assertEqual(body["status"], 504)
        [error] = body["result"]["errors"]
        self.assertEqual(error["type"], "AmqpOutcomeUnknown")
        self.assertIn("may still be delivered", error["message"])

    async def test_status_events_stored_and_posted(self) -> None:
        """A transport's status event reaches status_url and the components."""
        sink = HttpSink(reactor)
        base = await sink.start()
        self.addCleanup(sink.stop)
        api = await self.start()
        _, created, _ = await api.request(
            "POST",
            "/channels/",
            {"type": "fake", "config": {}, "status_url": base + "/status"},
        )
        cid = created["result"]["id"]
        transport = api.transport(cid)
        await transport.context.publish_status(
            status_event(
                component="smpp",
                status="degraded",
                type="throttled",
                message="Throttled",
                transport_name=cid,
            )
        )
        received = await sink.next()
        self.assertEqual(
            received.body,
            {
                "channel_id": cid,
                "component": "smpp",
                "status": "degraded",
                "type": "throttled",
                "message": "Throttled",
                "details": {},
            },
        )

        async def component() -> Any:
            _, found, _ = await api.request("GET", f"/channels/{cid}")
            return found["result"]["status"]

        status = await component()
        self.assertEqual(status["status"], "degraded")
        self.assertEqual(status["components"]["smpp"]["type"], "throttled")

    async def test_management_queue_health(self) -> None:
        """With a management interface /health reports each channel queue."""
        management = FakeManagement({})
        port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(
            Site(management)
        )
        self.addCleanup(port.stopListening)
        api = await self.start(
            rabbitmq_management_interface=f"127.0.0.1:{port.getHost().port}"
        )
        _, created, _ = await api.request(
            "POST", "/channels/", {"type": "fake", "config": {}, "mo_url": "http://x/"}
        )
        cid = created["result"]["id"]
        management.queues[f"{cid}.inbound"] = {
            "messages": 1256,
            "message_stats": {"ack_details": {"rate": 1.25}},
        }
        management.queues[f"{cid}.outbound"] = {"messages": 3}
        code, body, _ = await api.request("GET", "/health")
        self.assertEqual((code, body["description"]), (200, "queues ok"))
        self.assertEqual(
            body["result"],
            [
                {
                    "name": f"{cid}.inbound",
                    "messages": 1256,
                    "rate": 1.25,
                    "stuck": False,
                },
                {"name": f"{cid}.outbound", "messages": 3, "stuck": False},
            ],
        )
        self.assertTrue(all(a and a.startswith(b"Basic ") for a in management.auth))
        management.queues[f"{cid}.inbound"]["message_stats"]["ack_details"]["rate"] = (
            0.0
        )
        code, body, _ = await api.request("GET", "/health")
        self.assertEqual((code, body["description"]), (500, "queues stuck"))
        self.assertTrue(body["result"][0]["stuck"])

    async def test_management_unreachable(self) -> None:
        """An unreachable management API is a clear 503, not a crash."""
        api = await self.start(rabbitmq_management_interface="127.0.0.1:1")
        await api.request(
            "POST", "/channels/", {"type": "fake", "config": {}, "mo_url": "http://x/"}
        )
        code, body, _ = await api.request("GET", "/health")
        self.assertEqual(code, 503)
        self.assertEqual(body["description"], "rabbitmq management unreachable")
        errors = body["result"]["errors"]
        self.assertEqual(len(errors), 3)
        for error in errors:
            self.assertEqual(error["type"], "RabbitMQManagementUnreachable")
            self.assertIn(f"cannot ask about queue {error['name']}: ", error["message"])

    async def test_management_answering_5xx_or_not_json(self) -> None:
        """A management API answering 5xx, or 200 without JSON, is a 503
        saying so, not 200 "queues ok" with an empty list (as 0.2.0 did)."""
        management = FakeManagement({})
        port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(
            Site(management)
        )
        self.addCleanup(port.stopListening)
        api = await self.start(
            rabbitmq_management_interface=f"127.0.0.1:{port.getHost().port}"
        )
        _, created, _ = await api.request(
            "POST", "/channels/", {"type": "fake", "config": {}, "mo_url": "http://x/"}
        )
        cid = created["result"]["id"]
        for broken, message in [
            ((500, b"Internal Server Error"), "answered 500 for queue"),
            ((503, b'{"error": "unavailable"}'), "answered 503 for queue"),
            (
                (200, b"<html>proxy</html>"),
                "answered 200 without a JSON object for queue",
            ),
        ]:
            management.broken = broken
            code, body, _ = await api.request("GET", "/health")
            self.assertEqual(
                (code, body["description"]), (503, "rabbitmq management error")
            )
            self.assertEqual(
                body["result"]["errors"][0],
                {
                    "type": "RabbitMQManagementError",
                    "message": f"the management API {message} {cid}.inbound",
                    "name": f"{cid}.inbound",
                },
            )
        management.broken = None
        code, body, _ = await api.request("GET", "/health")
        self.assertEqual(
            (code, body["description"], body["result"]), (200, "queues ok", [])
        )


class IsolationTests(TestCase):
    async def start(self) -> ApiDriver:
        driver = ApiDriver(reactor)
        self.addCleanup(driver.stop)
        await driver.start()
        return driver

    async def test_crashing_transport_reports_down_others_serve(self) -> None:
        """A transport that crashes while sending shows as down; the message
        is kept (failed queue after a retry) and other channels keep working."""
        from junebug.testing.polling import wait_until

        self.addCleanup(self.flushLoggedErrors, RuntimeError)
        api = await self.start()
        assert api.junebug is not None
        props = {"type": "fake", "config": {}, "mo_url": "http://127.0.0.1:9/"}
        _, bad, _ = await api.request("POST", "/channels/", props)
        bad_id = bad["result"]["id"]
        broken = api.transport(bad_id)
        broken.fail_outbound = True
        _, good, _ = await api.request("POST", "/channels/", props)
        good_id = good["result"]["id"]
        healthy = api.transport(good_id)
        code, _, _ = await api.request(
            "POST", f"/channels/{bad_id}/messages/", {"to": "+1", "content": "x"}
        )
        self.assertEqual(code, 201)
        broker = api.junebug.broker
        assert isinstance(broker, MemoryBroker)
        await wait_until(lambda: broker.queue_messages(f"{bad_id}.outbound.failed"))
        _, found, _ = await api.request("GET", f"/channels/{bad_id}")
        transport = found["result"]["status"]["components"]["transport"]
        self.assertEqual(
            (transport["status"], transport["type"]), ("down", "transport_error")
        )
        self.assertIn("transport crashed", transport["message"])
        await api.request(
            "POST", f"/channels/{good_id}/messages/", {"to": "+1", "content": "y"}
        )
        await wait_until(lambda: healthy.outbound)
        broken.fail_outbound = False
        await api.request(
            "POST", f"/channels/{bad_id}/messages/", {"to": "+1", "content": "z"}
        )
        await wait_until(lambda: broken.outbound)

        async def status() -> Any:
            _, found, _ = await api.request("GET", f"/channels/{bad_id}")
            return found["result"]["status"]["status"]

        self.assertIsNone(await status())
        code, _, _ = await api.request("DELETE", f"/channels/{bad_id}")
        self.assertEqual(code, 200)

    async def test_status_shows_lost_redis(self) -> None:
        """With Redis unreachable a running channel still answers, with a down
        redis component."""
        from junebug.errors import StoreUnavailable

        api = await self.start()
        assert api.junebug is not None
        _, created, _ = await api.request(
            "POST", "/channels/", {"type": "fake", "config": {}, "mo_url": "http://x/"}
        )
        cid = created["result"]["id"]
        statuses = api.junebug.channels.deps.statuses

        async def down(channel_id: str) -> Any:
            raise StoreUnavailable("Redis GET: connection refused")

        statuses.load = down  # type: ignore[method-assign]
        code, found, _ = await api.request("GET", f"/channels/{cid}")
        self.assertEqual(code, 200)
        status = found["result"]["status"]
        self.assertEqual(status["status"], "down")
        self.assertEqual(status["components"]["redis"]["type"], "connection_lost")
