"""``POST {base_url_path}/messages``: requests, checks, answers and what is published."""

from __future__ import annotations

import base64
from typing import Any

from twisted.internet import reactor, task
from twisted.internet.defer import Deferred
from twisted.trial.unittest import TestCase

from junebug.errors import BrokerError
from junebug.messages import Message
from junebug.tests.message_api.driver import CONNECTOR, MessageApiDriver

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


def basic(user: str, password: str) -> dict[bytes, list[bytes]]:
    token = base64.b64encode(f"{user}:{password}".encode())
    return {b"Authorization": [b"Basic " + token]}


class SendTests(TestCase):
    async def driver(self, **options: Any) -> MessageApiDriver:
        driver = MessageApiDriver(reactor)
        self.addCleanup(driver.stop)
        await driver.start(**options)
        return driver

    async def test_send_publishes_vumi_message_and_answers_view(self) -> None:
        """A send answers 201 ``message submitted`` with the API view and publishes
        a vumi message to ``<connector>.outbound``."""
        driver = await self.driver()
        code, body, headers = await driver.request(
            "POST",
            "/messages",
            {"to": "+250788383383", "from": "2020", "content": "hello"},
        )
        self.assertEqual(code, 201, body)
        self.assertEqual(
            (body["status"], body["code"], body["description"]),
            (201, "Created", "message submitted"),
        )
        self.assertEqual(headers.getRawHeaders(b"content-type"), [b"application/json"])
        result = body["result"]
        self.assertEqual(set(result), VIEW_KEYS)
        self.assertEqual(result["channel_id"], CONNECTOR)
        self.assertEqual(result["channel_data"], {})
        msg = await driver.next_outbound()
        self.assertEqual(msg["message_id"], result["message_id"])
        self.assertEqual(msg["message_type"], "user_message")
        self.assertEqual(msg["message_version"], "20110921")
        self.assertEqual(
            (msg["to_addr"], msg["from_addr"], msg["content"]),
            ("+250788383383", "2020", "hello"),
        )
        self.assertEqual(msg["transport_name"], CONNECTOR)
        self.assertEqual(msg["transport_type"], "sms")
        self.assertIsNone(msg["in_reply_to"])

    async def test_transport_type_option(self) -> None:
        """``transport_type`` is set on non-reply messages."""
        driver = await self.driver(transport_type="ussd")
        code, body, _ = await driver.request(
            "POST", "/messages", {"to": "+1", "from": "2", "content": "x"}
        )
        self.assertEqual(code, 201, body)
        self.assertEqual((await driver.next_outbound())["transport_type"], "ussd")

    async def test_trailing_slash_is_accepted(self) -> None:
        """``/messages/`` works as well as ``/messages`` (no redirect of a POST)."""
        driver = await self.driver()
        for path in ("/messages", "/messages/"):
            code, body, _ = await driver.request(
                "POST", path, {"to": "+1", "from": "2", "content": "x"}
            )
            self.assertEqual(code, 201, (path, body))

    async def test_base_url_path_is_joined_like_vumi2(self) -> None:
        """``base_url_path: /channels/`` serves ``/channels/messages`` only."""
        driver = await self.driver(base_url_path="/channels/")
        code, _, _ = await driver.request(
            "POST", "/channels/messages", {"to": "+1", "from": "2", "content": "x"}
        )
        self.assertEqual(code, 201)
        code, body, _ = await driver.request(
            "POST", "/messages", {"to": "+1", "from": "2", "content": "x"}
        )
        self.assertEqual(code, 404)
        self.assertEqual(body["result"]["errors"][0]["type"], "Not Found")

    async def test_base_url_path_with_channel_id_serves_junebug_urls(self) -> None:
        """``/channels/<channel_id>`` serves Junebug's ``/channels/<id>/messages/``."""
        driver = await self.driver(base_url_path="/channels/<channel_id>")
        for path in ("/channels/abc-123/messages/", "/channels/other/messages"):
            code, body, _ = await driver.request(
                "POST", path, {"to": "+1", "from": "2", "content": "x"}
            )
            self.assertEqual(code, 201, (path, body))
            self.assertEqual(body["result"]["channel_id"], CONNECTOR)

    async def test_wrong_method_and_unknown_path(self) -> None:
        """Routing errors answer with the envelope (405, 404)."""
        driver = await self.driver()
        code, body, _ = await driver.request("GET", "/messages")
        self.assertEqual(code, 405)
        self.assertEqual(body["result"]["errors"][0]["type"], "Method Not Allowed")
        code, body, _ = await driver.request("POST", "/channels/x/messages/", {})
        self.assertEqual(code, 404)

    async def test_invalid_json_and_schema(self) -> None:
        """Bodies are checked as by the channel messages endpoint."""
        driver = await self.driver()
        code, body, _ = await driver.request("POST", "/messages", raw=b"{nope")
        self.assertEqual((code, body["description"]), (400, "json decode error"))
        code, body, _ = await driver.request(
            "POST", "/messages", {"to": "+1", "content": "x", "colour": "red"}
        )
        self.assertEqual((code, body["description"]), (400, "api usage error"))
        self.assertEqual(body["result"]["errors"][0]["type"], "invalid_body")
        self.assertIn("colour", body["result"]["errors"][0]["message"])
        code, body, _ = await driver.request("POST", "/messages", {"to": "+1"})
        self.assertEqual(code, 400)
        self.assertIn("'content' is a required property", str(body))

    async def test_to_or_reply_to_required(self) -> None:
        """Neither ``to`` nor ``reply_to``: 400 ApiUsageError."""
        driver = await self.driver()
        code, body, _ = await driver.request("POST", "/messages", {"content": "x"})
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

    async def test_from_required_without_default(self) -> None:
        """A non-reply without ``from`` is refused unless default_from_addr is set."""
        driver = await self.driver()
        code, body, _ = await driver.request(
            "POST", "/messages", {"to": "+1", "content": "x"}
        )
        self.assertEqual(code, 400, body)
        self.assertEqual(body["result"]["errors"][0]["type"], "ApiUsageError")
        self.assertIn(
            '"from" must be specified', body["result"]["errors"][0]["message"]
        )
        self.assertEqual(driver.broker.pending(f"{CONNECTOR}.outbound"), 0)

    async def test_bad_event_url_template(self) -> None:
        """An event_url with an unknown variable is a 400; nothing is published."""
        driver = await self.driver()
        code, body, _ = await driver.request(
            "POST",
            "/messages",
            {"to": "+1", "from": "2", "content": "x", "event_url": "http://x/{nope}"},
        )
        self.assertEqual(code, 400, body)
        self.assertEqual(body["result"]["errors"][0]["type"], "ApiUsageError")
        self.assertIn("unknown variable {nope}", body["result"]["errors"][0]["message"])
        self.assertEqual(driver.broker.pending(f"{CONNECTOR}.outbound"), 0)

    async def test_default_from_addr(self) -> None:
        """``default_from_addr`` fills a missing or null ``from``."""
        driver = await self.driver(default_from_addr="2020")
        for body in (
            {"to": "+1", "content": "x"},
            {"to": "+1", "content": "x", "from": None},
        ):
            code, answer, _ = await driver.request("POST", "/messages", body)
            self.assertEqual(code, 201, answer)
            self.assertEqual(answer["result"]["from"], "2020")
            self.assertEqual((await driver.next_outbound())["from_addr"], "2020")
        code, answer, _ = await driver.request(
            "POST", "/messages", {"to": "+1", "content": "x", "from": "3030"}
        )
        self.assertEqual(answer["result"]["from"], "3030")

    async def test_reply_to_an_inbound_message(self) -> None:
        """A reply is built from the inbound message the forwarder cached."""
        driver = await self.driver()
        inbound = await driver.receive(
            "hi", from_addr="+27820001111", to_addr="*120#", transport_type="ussd"
        )
        api = driver.api
        assert api is not None
        await wait_for(
            lambda: api.cache.store.load_inbound(CONNECTOR, inbound["message_id"])
        )
        code, body, _ = await driver.request(
            "POST",
            "/messages",
            {
                "reply_to": inbound["message_id"],
                "content": "bye",
                "channel_data": {"continue_session": False},
            },
        )
        self.assertEqual(code, 201, body)
        self.assertEqual(body["result"]["reply_to"], inbound["message_id"])
        msg = await driver.next_outbound()
        self.assertEqual(msg["in_reply_to"], inbound["message_id"])
        self.assertEqual((msg["to_addr"], msg["from_addr"]), ("+27820001111", "*120#"))
        self.assertEqual(msg["session_event"], "close")
        self.assertEqual(msg["transport_type"], "ussd")

    async def test_reply_keeps_the_inbound_transport_name(self) -> None:
        """A reply is published with the inbound message's ``transport_name``
        (what a vumi2 router routes it back by); the answer's ``channel_id``
        stays the connector name.  A new message carries the connector name."""
        driver = await self.driver(default_from_addr="2020")
        inbound = await driver.receive("hi", transport_name="smpp-transport")
        api = driver.api
        assert api is not None
        await wait_for(
            lambda: api.cache.store.load_inbound(CONNECTOR, inbound["message_id"])
        )
        code, body, _ = await driver.request(
            "POST", "/messages", {"reply_to": inbound["message_id"], "content": "bye"}
        )
        self.assertEqual(code, 201, body)
        self.assertEqual(body["result"]["channel_id"], CONNECTOR)
        msg = await driver.next_outbound()
        self.assertEqual(msg["in_reply_to"], inbound["message_id"])
        self.assertEqual(msg["transport_name"], "smpp-transport")
        code, body, _ = await driver.request(
            "POST", "/messages", {"to": "+1", "content": "new"}
        )
        self.assertEqual(code, 201, body)
        self.assertEqual((await driver.next_outbound())["transport_name"], CONNECTOR)

    async def test_null_reply_to_and_event_fields_mean_absent(self) -> None:
        """``reply_to``, ``event_url`` and ``event_auth_token`` given as ``null``
        are taken as not given, as vumi2 does: a new message, no event URL."""
        driver = await self.driver(default_from_addr="2020")
        code, body, _ = await driver.request(
            "POST",
            "/messages",
            {
                "to": "+1",
                "content": "x",
                "reply_to": None,
                "event_url": None,
                "event_auth_token": None,
            },
        )
        self.assertEqual(code, 201, body)
        self.assertIsNone(body["result"]["reply_to"])
        msg = await driver.next_outbound()
        self.assertIsNone(msg["in_reply_to"])
        api = driver.api
        assert api is not None
        record = await api.cache.store.load_outbound(CONNECTOR, msg["message_id"])
        assert record is not None
        self.assertNotIn("event_url", record)
        self.assertNotIn("event_auth_token", record)
        code, body, _ = await driver.request(
            "POST", "/messages", {"reply_to": None, "content": "x"}
        )
        self.assertEqual(code, 400, body)
        self.assertEqual(
            body["result"]["errors"][0]["message"],
            'Either "to" or "reply_to" must be specified',
        )
        code, body, _ = await driver.request(
            "POST", "/messages", {"to": "+1", "content": "x", "event_url": 5}
        )
        self.assertEqual((code, body["description"]), (400, "api usage error"))

    async def test_unknown_reply_to(self) -> None:
        """An unknown ``reply_to`` is a 400 MessageNotFound, even with ``to``."""
        driver = await self.driver()
        code, body, _ = await driver.request(
            "POST",
            "/messages",
            {"reply_to": "nope", "to": "+1", "from": "2", "content": "x"},
        )
        self.assertEqual(code, 400)
        self.assertEqual(
            body["result"]["errors"],
            [
                {
                    "type": "MessageNotFound",
                    "message": "Inbound message with id nope not found",
                }
            ],
        )

    async def test_allow_expired_replies(self) -> None:
        """With allow_expired_replies, an unknown ``reply_to`` plus ``to`` is sent new."""
        driver = await self.driver(allow_expired_replies=True, default_from_addr="2020")
        code, body, _ = await driver.request(
            "POST", "/messages", {"reply_to": "gone", "to": "+1", "content": "x"}
        )
        self.assertEqual(code, 201, body)
        msg = await driver.next_outbound()
        self.assertIsNone(msg["in_reply_to"])
        self.assertEqual((msg["to_addr"], msg["from_addr"]), ("+1", "2020"))
        code, body, _ = await driver.request(
            "POST", "/messages", {"reply_to": "gone", "content": "x"}
        )
        self.assertEqual(code, 400)

    async def test_broker_unavailable(self) -> None:
        """Broker down: 503 ``amqp connection error``."""
        driver = await self.driver()
        driver.broker.disconnect()
        self.addCleanup(driver.broker.reconnect)
        code, body, _ = await driver.request(
            "POST", "/messages", {"to": "+1", "from": "2", "content": "x"}
        )
        self.assertEqual((code, body["description"]), (503, "amqp connection error"))

    async def test_request_timeout_while_publishing(self) -> None:
        """Not confirmed within request_timeout: 504 ``outcome unknown`` (the
        message was handed to the broker and may still be sent)."""
        driver = await self.driver(request_timeout=0.2)
        stuck: Deferred[None] = Deferred()
        original = driver.broker.publish

        async def hang(routing_key: str, message: Message) -> None:
            await stuck

        driver.broker.publish = hang  # type: ignore[method-assign]
        code, body, _ = await driver.request(
            "POST", "/messages", {"to": "+1", "from": "2", "content": "x"}
        )
        driver.broker.publish = original  # type: ignore[method-assign]
        self.assertEqual((code, body["description"]), (504, "outcome unknown"))
        error = body["result"]["errors"][0]
        self.assertEqual(error["type"], "OutcomeUnknown")
        self.assertIn("may still be sent", error["message"])

    async def test_request_timeout_with_the_rabbitmq_broker_error(self) -> None:
        """The RabbitMQ broker turns the cancelled confirm into a BrokerError:
        still 504 ``outcome unknown``, not 503 ``amqp connection error``."""
        driver = await self.driver(request_timeout=0.2)
        stuck: Deferred[None] = Deferred()
        original = driver.broker.publish

        async def hang(routing_key: str, message: Message) -> None:
            try:
                await stuck
            except Exception as exc:  # as RabbitMQBroker._publish_body does
                raise BrokerError(f"message to {routing_key} not confirmed") from exc

        driver.broker.publish = hang  # type: ignore[method-assign]
        code, body, _ = await driver.request(
            "POST", "/messages", {"to": "+1", "from": "2", "content": "x"}
        )
        driver.broker.publish = original  # type: ignore[method-assign]
        self.assertEqual((code, body["description"]), (504, "outcome unknown"), body)
        self.assertEqual(body["result"]["errors"][0]["type"], "OutcomeUnknown")

    async def test_request_timeout_before_publishing(self) -> None:
        """Timed out before the message reached the broker (here: the state
        cache hangs): 504 ``request timed out``, and nothing is ever sent."""
        driver = await self.driver(request_timeout=0.2)
        api = driver.api
        assert api is not None
        stuck: Deferred[None] = Deferred()
        store = api.cache.store
        original = store.store_outbound

        async def hang(*args: Any, **kwargs: Any) -> None:
            await stuck

        store.store_outbound = hang  # type: ignore[method-assign]
        code, body, _ = await driver.request(
            "POST", "/messages", {"to": "+1", "from": "2", "content": "x"}
        )
        store.store_outbound = original  # type: ignore[method-assign]
        self.assertEqual((code, body["description"]), (504, "request timed out"))
        error = body["result"]["errors"][0]
        self.assertEqual(error["type"], "RequestTimeout")
        self.assertIn("not sent", error["message"])
        self.assertEqual(driver.broker.pending(f"{CONNECTOR}.outbound"), 0)
        self.assertTrue(driver.outbound.pending == [])

    async def test_basic_auth_off_by_default(self) -> None:
        """Without ``auth``, any (or no) credentials are accepted."""
        driver = await self.driver()
        code, _, _ = await driver.request(
            "POST",
            "/messages",
            {"to": "+1", "from": "2", "content": "x"},
            headers=basic("anyone", "anything"),
        )
        self.assertEqual(code, 201)

    async def test_basic_auth_checked_when_configured(self) -> None:
        """With ``auth``, missing or wrong credentials get 401 and a challenge."""
        driver = await self.driver(auth={"username": "user1", "password": "pass1"})
        message = {"to": "+1", "from": "2", "content": "x"}
        for headers in (
            None,
            basic("user1", "wrong"),
            basic("wrong", "pass1"),
            {b"Authorization": [b"Token pass1"]},
            {b"Authorization": [b"Basic !!!"]},
        ):
            code, body, answer = await driver.request(
                "POST", "/messages", message, headers=headers
            )
            self.assertEqual(
                (code, body["description"]), (401, "unauthorized"), headers
            )
            self.assertEqual(body["result"]["errors"][0]["type"], "Unauthorized")
            self.assertTrue(
                answer.getRawHeaders(b"www-authenticate")[0].startswith(b"Basic ")
            )
        self.assertEqual(driver.broker.pending(f"{CONNECTOR}.outbound"), 0)
        code, body, _ = await driver.request(
            "POST", "/messages", message, headers=basic("user1", "pass1")
        )
        self.assertEqual(code, 201, body)


async def wait_for(check: Any, timeout: float = 5.0) -> Any:
    """Await ``check()`` until it returns something truthy."""
    waited = 0.0
    while True:
        value = await check()
        if value:
            return value
        if waited > timeout:
            raise TimeoutError("condition not met")
        await task.deferLater(reactor, 0.01, lambda: None)
        waited += 0.01
