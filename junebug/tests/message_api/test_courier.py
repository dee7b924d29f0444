"""RapidPro's Junebug channel (courier's "JN" handler) against the message API.

In process, over real HTTP, with an in-memory broker: the doubles of
:mod:`junebug.tests.message_api.courier` send exactly as courier sends and
refuse what courier refuses.  The first tests pin the doubles to courier's own
test vectors, so a double that grew lenient would fail here.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet import reactor
from twisted.trial.unittest import SynchronousTestCase, TestCase

from junebug.messages import delivery_report, nack
from junebug.tests.message_api.courier import (
    CourierSender,
    FakeCourier,
    go_json,
    parse_go_timestamp,
    split_msg,
)
from junebug.tests.message_api.driver import CONNECTOR, MessageApiDriver

CHANNEL = "8eb23e93-5ecb-45ba-b726-3b064e0c56ab"
VALID_MSG = {
    "from": "+250788383383",
    "timestamp": "2017-01-01 01:02:03.05",
    "content": "hello world",
    "to": "2020",
    "message_id": "external-id",
}


class CourierDoubleTests(SynchronousTestCase):
    """The doubles answer courier's own test cases as courier does."""

    def courier(self, secret: str | None = None) -> FakeCourier:
        return FakeCourier(reactor, CHANNEL, secret=secret)

    def post(
        self, courier: FakeCourier, action: str, body: Any, token: str | None = None
    ) -> tuple[int, str]:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers = {"authorization": f"Token {token}"} if token else {}
        return courier.handle(f"/c/jn/{CHANNEL}/{action}", headers, raw)

    def test_inbound_vectors(self) -> None:
        courier = self.courier()
        self.assertEqual(self.post(courier, "inbound", VALID_MSG)[0], 200)
        msg = courier.messages.pending[0]
        self.assertEqual(
            (msg.urn, msg.text, msg.external_id),
            ("tel:+250788383383", "hello world", "external-id"),
        )
        self.assertEqual(
            msg.received_on.isoformat(), "2017-01-01T01:02:03.050000+00:00"
        )
        code, reason = self.post(
            courier, "inbound", {**VALID_MSG, "from": "MTN12345678901234567"}
        )
        self.assertEqual((code, reason), (400, "phone number supplied is not a number"))
        code, reason = self.post(
            courier, "inbound", {**VALID_MSG, "timestamp": "20170101T01:02:03.05"}
        )
        self.assertEqual(code, 400)
        self.assertIn("unable to parse date", reason)
        missing = {k: v for k, v in VALID_MSG.items() if k != "message_id"}
        code, reason = self.post(courier, "inbound", missing)
        self.assertEqual(code, 400)
        self.assertIn("'message_id' failed on the 'required'", reason)
        for field in ("from", "to", "timestamp"):
            code, _ = self.post(courier, "inbound", {**VALID_MSG, field: None})
            self.assertEqual(code, 400, field)
        code, _ = self.post(
            courier, "inbound", {**VALID_MSG, "content": None, "reply_to": None}
        )
        self.assertEqual(code, 200, "content and reply_to are optional")
        code, _ = self.post(courier, "inbound", {**VALID_MSG, "message_id": 12})
        self.assertEqual(code, 400, "a number is not a string")

    def test_event_vectors(self) -> None:
        courier = self.courier()
        for event_type, expected in (
            ("delivery_pending", None),
            ("submitted", "S"),
            ("delivery_succeeded", "D"),
            ("rejected", "F"),
            ("delivery_failed", "F"),
            ("unknown", None),
        ):
            code, _ = self.post(
                courier, "event", {"event_type": event_type, "message_id": "xx12345"}
            )
            self.assertEqual(code, 200)
            statuses = courier.statuses.pending
            if expected is None:
                self.assertEqual(statuses, [], event_type)
            else:
                self.assertEqual(
                    (statuses[-1].external_id, statuses[-1].status),
                    ("xx12345", expected),
                )
                statuses.clear()
        self.assertEqual(self.post(courier, "event", b"not json")[0], 400)
        self.assertEqual(self.post(courier, "event", {"message_id": "xx12345"})[0], 400)

    def test_token_vectors(self) -> None:
        courier = self.courier(secret="sesame")
        self.assertEqual(
            self.post(courier, "inbound", VALID_MSG, token="sesame")[0], 200
        )
        self.assertEqual(self.post(courier, "inbound", VALID_MSG, token="foo")[0], 401)
        self.assertEqual(self.post(courier, "inbound", VALID_MSG)[0], 401)
        event = {"event_type": "submitted", "message_id": "xx12345"}
        self.assertEqual(self.post(courier, "event", event, token="sesame")[0], 200)
        self.assertEqual(self.post(courier, "event", event, token="foo")[0], 401)

    def test_go_timestamp_layout(self) -> None:
        for text in (
            "2017-01-01 01:02:03",
            "2017-01-01 01:02:03.123456",
            "2017-01-01 01:02:03,5",
        ):
            parse_go_timestamp(text)
        for text in (
            "2017-01-01T01:02:03",
            "2017-1-01 01:02:03",
            "2017-01-01 01:02:03Z",
            "2017-13-01 01:02:03",
        ):
            with self.assertRaises(ValueError, msg=text):
                parse_go_timestamp(text)

    def test_send_body_as_courier_writes_it(self) -> None:
        """Byte for byte courier's test vector (with and without a secret)."""
        sender = CourierSender(
            reactor,
            send_url="http://x/",
            username="user1",
            password="pass1",
            channel_uuid=CHANNEL,
            address="2020",
            callback_domain="localhost",
        )
        self.assertEqual(
            sender.payload("Simple Message", "+250788383383"),
            b'{"event_url":"https://localhost/c/jn/8eb23e93-5ecb-45ba-b726-3b064e0c56ab/event",'
            b'"content":"Simple Message","from":"2020","to":"+250788383383"}',
        )
        self.assertEqual(
            sender.headers()[b"Authorization"], [b"Basic dXNlcjE6cGFzczE="]
        )
        sender.secret = "sesame"
        self.assertTrue(
            sender.payload("x", "+1").endswith(b',"event_auth_token":"sesame"}')
        )
        self.assertEqual(go_json({"c": "<a&b>"}), b'{"c":"\\u003ca\\u0026b\\u003e"}')

    def test_split(self) -> None:
        self.assertEqual(split_msg("short", 10), ["short"])
        self.assertEqual(split_msg("aaaa bbbb cccc", 9), ["aaaa bbbb", "cccc"])
        self.assertEqual(split_msg("x" * 25, 10), ["x" * 10, "x" * 10, "x" * 5])


class RapidProTests(TestCase):
    """courier's sends, MO and events through the in-process message API."""

    async def setup(
        self, secret: str | None = "sesame", max_length: int = 1530, **options: Any
    ) -> tuple[MessageApiDriver, FakeCourier, CourierSender]:
        courier = FakeCourier(reactor, secret=secret)
        await courier.start()
        self.addCleanup(courier.stop)
        options.setdefault("mo_message_url", courier.inbound_url)
        if options.get("default_event_url") == "COURIER":
            options["default_event_url"] = courier.event_url
        if secret:
            options.setdefault("mo_message_url_auth_token", secret)
        driver = MessageApiDriver(reactor)
        self.addCleanup(driver.stop)
        await driver.start(**options)
        sender = CourierSender(
            reactor,
            send_url=driver.base + "/messages",
            username="user1",
            password="pass1",
            channel_uuid=courier.channel_uuid,
            address="2020",
            callback_domain=courier.base.removeprefix("http://"),
            callback_scheme="http",
            secret=secret,
            max_length=max_length,
        )
        self.addCleanup(sender.close)
        self.addCleanup(lambda: self.assertEqual(courier.rejections(), []))
        return driver, courier, sender

    async def test_send_is_wired_and_sent(self) -> None:
        """A courier send is wired with result.message_id; the ack marks it sent."""
        driver, courier, sender = await self.setup(
            auth={"username": "user1", "password": "pass1"}
        )
        result = await sender.send("Simple Message", "+250788383383")
        self.assertEqual(result.status, "W", result)
        self.assertEqual(result.parts[0]["code"], 201)
        self.assertEqual(result.parts[0]["content_type"], "application/json")
        msg = await driver.next_outbound()
        self.assertEqual(msg["message_id"], result.external_id)
        self.assertEqual(
            (msg["to_addr"], msg["from_addr"], msg["content"]),
            ("+250788383383", "2020", "Simple Message"),
        )
        status = await courier.next_status()
        self.assertEqual((status.external_id, status.status), (result.external_id, "S"))
        self.assertEqual(status.payload["channel_id"], CONNECTOR)

    async def test_wrong_credentials_error_the_send(self) -> None:
        """With ``auth`` on, courier's send with other credentials is errored."""
        _, _, sender = await self.setup(auth={"username": "user1", "password": "other"})
        result = await sender.send("Simple Message", "+250788383383")
        self.assertEqual((result.status, result.parts[0]["code"]), ("E", 401))

    async def test_long_text_is_sent_in_parts(self) -> None:
        """Each part is a message of its own; the first id is the external id."""
        driver, courier, sender = await self.setup(max_length=20)
        text = "one two three four five six seven eight nine ten eleven"
        result = await sender.send(text, "+250788383383")
        self.assertEqual(result.status, "W")
        self.assertEqual(len(result.parts), 3)
        contents, ids = [], []
        for _ in range(3):
            msg = await driver.next_outbound()
            contents.append(msg["content"])
            ids.append(msg["message_id"])
        self.assertEqual(" ".join(contents), text)
        self.assertEqual(result.external_id, ids[0])
        sent = {(await courier.next_status()).external_id for _ in range(3)}
        self.assertEqual(sent, set(ids))

    async def test_events_map_to_statuses(self) -> None:
        """nack → F, delivered → D, failed → F; pending is ignored by courier."""
        driver, courier, sender = await self.setup()
        driver.auto_ack = False
        result = await sender.send("hi", "+250788383383")
        mid = result.external_id
        assert mid is not None
        for event, expected in (
            (delivery_report(mid, "pending", CONNECTOR), None),
            (delivery_report(mid, "delivered", CONNECTOR), "D"),
            (delivery_report(mid, "failed", CONNECTOR), "F"),
            (nack(mid, "Unknown address.", CONNECTOR), "F"),
        ):
            await driver.event(event)
            if expected is not None:
                status = await courier.next_status()
                self.assertEqual((status.external_id, status.status), (mid, expected))
        self.assertEqual(courier.requests[-1].code, 200)
        ignored = [r for r in courier.requests if r.outcome.startswith("Ignored")]
        self.assertEqual(len(ignored), 1)

    async def test_without_secret(self) -> None:
        """No secret: no event_auth_token, no Token headers; all still accepted."""
        driver, courier, sender = await self.setup(secret=None)
        result = await sender.send("hi", "+250788383383")
        self.assertEqual(result.status, "W")
        await courier.next_status()
        await driver.receive("hello")
        await courier.next_message()
        self.assertTrue(all("authorization" not in r.headers for r in courier.requests))

    async def test_inbound_reaches_rapidpro(self) -> None:
        """MO is accepted by courier: fields, timestamp layout and Token header."""
        driver, courier, _ = await self.setup()
        msg = await driver.receive("hello world")
        incoming = await courier.next_message()
        self.assertEqual(
            (incoming.urn, incoming.text, incoming.external_id),
            ("tel:+250788383383", "hello world", msg["message_id"]),
        )
        request = courier.requests[-1]
        self.assertEqual(request.headers["authorization"], "Token sesame")
        self.assertEqual(request.headers["content-type"], "application/json")
        await driver.receive(None, session_event="new")
        self.assertEqual((await courier.next_message()).text, "")

    async def test_evicted_event_info_falls_back_to_default_event_url(self) -> None:
        """With default_event_url set to courier's event URL, events still arrive
        after the message's own event info left the (size-bounded) cache."""
        driver, courier, sender = await self.setup(
            state_cache_config={"max_size": 1},
            default_event_url="COURIER",
            default_event_auth_token="sesame",
        )
        assert driver.api is not None
        driver.auto_ack = False
        first = await sender.send("first", "+250788383383")
        await sender.send("second", "+250788383383")
        assert first.external_id is not None
        self.assertIsNone(
            await driver.api.cache.store.load_outbound(CONNECTOR, first.external_id)
        )
        await driver.event(delivery_report(first.external_id, "delivered", CONNECTOR))
        status = await courier.next_status()
        self.assertEqual((status.external_id, status.status), (first.external_id, "D"))
