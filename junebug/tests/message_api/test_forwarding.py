"""Inbound messages and events from the connector, POSTed in Junebug's formats."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

from twisted.internet import reactor
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import TestCase
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site

from junebug.http.delivery import DEAD_QUEUE
from junebug.messages import (
    Message,
    ack,
    delivery_report,
    nack,
    parse_timestamp,
    user_message,
)
from junebug.testing.http_sink import HttpSink, Received
from junebug.testing.polling import wait_until
from junebug.tests.message_api.driver import CONNECTOR, MessageApiDriver

MO_KEYS = {
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
EVENT_KEYS = {"event_type", "message_id", "channel_id", "timestamp", "event_details"}


def mo_message() -> Message:
    """An MO message as a transport publishes it."""
    return user_message(
        to_addr="2020", from_addr="+1", transport_name="sms", content="x"
    )


class LogCapture:
    """Collects log events of the ``junebug.message_api`` namespace."""

    def __init__(self, case: TestCase, namespace: str = "junebug.message_api") -> None:
        self.namespace = namespace
        self.events: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(self)
        case.addCleanup(globalLogPublisher.removeObserver, self)

    def __call__(self, event: dict[str, Any]) -> None:
        if str(event.get("log_namespace")).startswith(self.namespace):
            self.events.append(event)

    def formats(self) -> list[str]:
        return [str(e.get("log_format")) for e in self.events]


class _Silent(Resource):
    """Never answers (for timeouts)."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[Any] = []

    def render_POST(self, request: Any) -> Any:
        self.requests.append(request)
        return NOT_DONE_YET


class ForwardingTests(TestCase):
    async def setup(self, **options: Any) -> tuple[MessageApiDriver, HttpSink, str]:
        sink = HttpSink(reactor)
        base = await sink.start()
        self.addCleanup(sink.stop)
        options.setdefault("mo_message_url", base + "/mo")
        # "SINK" in an option stands for the sink's base URL (unknown until now),
        # with credentials in mo_message_url
        with_user = base.replace("http://", "http://jb:s3cret@")
        options = {
            k: (
                v.replace("SINK", with_user if k == "mo_message_url" else base)
                if isinstance(v, str)
                else v
            )
            for k, v in options.items()
        }
        driver = MessageApiDriver(reactor)
        self.addCleanup(driver.stop)
        await driver.start(**options)
        return driver, sink, base

    async def send(self, driver: MessageApiDriver, **body: Any) -> str:
        body.setdefault("to", "+250788383383")
        body.setdefault("from", "2020")
        body.setdefault("content", "hello")
        code, answer, _ = await driver.request("POST", "/messages", body)
        self.assertEqual(code, 201, answer)
        message_id: str = answer["result"]["message_id"]
        return message_id

    async def test_inbound_posted_with_token(self) -> None:
        """An MO message is POSTed as the API view with ``Authorization: Token``."""
        driver, sink, _ = await self.setup(mo_message_url_auth_token="sesame")
        msg = await driver.receive("hello world", helper_metadata={"k": "v"})
        got: Received = await sink.next()
        self.assertEqual(got.path, "/mo")
        self.assertEqual(got.headers["content-type"], "application/json")
        self.assertEqual(got.headers["authorization"], "Token sesame")
        self.assertEqual(set(got.body), MO_KEYS)
        self.assertEqual(
            {k: got.body[k] for k in ("from", "to", "message_id", "content")},
            {
                "from": "+250788383383",
                "to": "2020",
                "message_id": msg["message_id"],
                "content": "hello world",
            },
        )
        self.assertEqual(got.body["channel_id"], "sms-channel")
        self.assertEqual(got.body["channel_data"], {"k": "v"})
        parse_timestamp(got.body["timestamp"])
        self.assertRegex(
            got.body["timestamp"], r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+$"
        )

    async def test_inbound_normalised_for_courier(self) -> None:
        """Timestamps with ``Z``/``T``/an offset are posted in vumi's format
        (UTC), a missing or unreadable one as the time of arrival, and
        non-string content as its JSON text (courier refuses anything else)."""
        driver, sink, _ = await self.setup()
        cases: list[tuple[dict[str, Any], dict[str, Any]]] = [
            (
                {"timestamp": "2026-11-25 09:01:02.497614Z", "content": 42},
                {"timestamp": "2026-11-25 09:01:02.497614", "content": "42"},
            ),
            (
                {"timestamp": "2026-11-25T09:01:02Z", "content": {"a": [1]}},
                {"timestamp": "2026-11-25 09:01:02.000000", "content": '{"a": [1]}'},
            ),
            (
                {"timestamp": "2026-11-25T11:01:02.5+02:00", "content": True},
                {"timestamp": "2026-11-25 09:01:02.500000", "content": "true"},
            ),
            (
                {"timestamp": "2026-11-25 09:01:02", "content": None},
                {"timestamp": "2026-11-25 09:01:02", "content": None},
            ),
        ]
        for fields, expected in cases:
            msg = {**mo_message(), **fields}
            await driver.broker.publish(f"{CONNECTOR}.inbound", msg)
            got = await sink.next()
            self.assertEqual(got.body["message_id"], msg["message_id"])
            self.assertEqual(
                {k: got.body[k] for k in expected}, expected, (fields, got.body)
            )
        for timestamp in ("absent", None, "yesterday", 12):
            msg = mo_message()
            if timestamp == "absent":
                del msg["timestamp"]
            else:
                msg["timestamp"] = timestamp
            await driver.broker.publish(f"{CONNECTOR}.inbound", msg)
            got = await sink.next()
            self.assertEqual(got.body["message_id"], msg["message_id"])
            self.assertRegex(
                got.body["timestamp"], r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}$"
            )
            age = datetime.now(UTC) - parse_timestamp(got.body["timestamp"])
            self.assertLess(abs(age.total_seconds()), 60, timestamp)

    async def test_inbound_basic_auth_from_userinfo(self) -> None:
        """``user:password@`` in mo_message_url is sent as HTTP Basic."""
        driver, sink, _ = await self.setup(
            mo_message_url="SINK/mo", mo_message_url_auth_token="ignored"
        )
        await driver.receive("hi")
        got = await sink.next()
        expected = "Basic " + base64.b64encode(b"jb:s3cret").decode()
        self.assertEqual(got.headers["authorization"], expected)
        self.assertEqual(got.path, "/mo")

    async def test_inbound_without_token_has_no_authorization(self) -> None:
        driver, sink, _ = await self.setup()
        await driver.receive("hi")
        got = await sink.next()
        self.assertNotIn("authorization", got.headers)

    async def test_event_posted_to_message_event_url(self) -> None:
        """An ack goes to the message's event_url with its event_auth_token."""
        driver, sink, base = await self.setup()
        message_id = await self.send(
            driver, event_url=base + "/ev", event_auth_token="sesame"
        )
        got = await sink.next()
        self.assertEqual(got.path, "/ev")
        self.assertEqual(got.headers["authorization"], "Token sesame")
        self.assertEqual(set(got.body), EVENT_KEYS)
        self.assertEqual(
            (got.body["event_type"], got.body["message_id"], got.body["channel_id"]),
            ("submitted", message_id, CONNECTOR),
        )
        self.assertEqual(got.body["event_details"], {})

    async def test_event_types(self) -> None:
        """nack → rejected (with reason); delivery reports → delivery_*."""
        driver, sink, base = await self.setup()
        driver.auto_ack = False
        message_id = await self.send(driver, event_url=base + "/ev")
        await driver.next_outbound()
        for event, (kind, details) in (
            (
                nack(message_id, "no route", CONNECTOR),
                ("rejected", {"reason": "no route"}),
            ),
            (
                delivery_report(message_id, "pending", CONNECTOR),
                ("delivery_pending", {}),
            ),
            (delivery_report(message_id, "failed", CONNECTOR), ("delivery_failed", {})),
            (
                delivery_report(message_id, "delivered", CONNECTOR),
                ("delivery_succeeded", {}),
            ),
        ):
            await driver.event(event)
            got = await sink.next()
            self.assertEqual(
                (got.body["event_type"], got.body["event_details"]), (kind, details)
            )
            self.assertNotIn("authorization", got.headers)
        await driver.event(delivery_report(message_id, "bogus", CONNECTOR))
        await driver.event(ack(message_id, "x", CONNECTOR))
        got = await sink.next()
        self.assertEqual(
            got.body["event_type"], "submitted", "the bogus one is skipped"
        )

    async def test_event_without_info_goes_to_default_event_url(self) -> None:
        """A message sent without event_url: its events go to default_event_url."""
        driver, sink, _ = await self.setup(
            default_event_url="SINK/default", default_event_auth_token="deftok"
        )
        message_id = await self.send(driver)
        got = await sink.next()
        self.assertEqual(got.path, "/default")
        self.assertEqual(got.headers["authorization"], "Token deftok")
        self.assertEqual(got.body["message_id"], message_id)
        await driver.event(ack("never-sent-here", "x", CONNECTOR))
        got = await sink.next()
        self.assertEqual(
            (got.path, got.body["message_id"]), ("/default", "never-sent-here")
        )

    async def test_message_event_url_wins_over_default(self) -> None:
        driver, sink, base = await self.setup(
            default_event_url="SINK/default", default_event_auth_token="deftok"
        )
        await self.send(driver, event_url=base + "/mine")
        got = await sink.next()
        self.assertEqual(got.path, "/mine")
        self.assertNotIn("authorization", got.headers)

    async def test_event_without_info_or_default_is_logged(self) -> None:
        """No event URL anywhere: the event is logged and not posted."""
        logs = LogCapture(self)
        driver, sink, _ = await self.setup()
        message_id = await self.send(driver)
        await wait_until(
            lambda: any("No event URL" in f for f in logs.formats()), timeout=5
        )
        warning = next(e for e in logs.events if "No event URL" in str(e["log_format"]))
        self.assertEqual(warning["message_id"], message_id)
        self.assertTrue(sink.queue.pending == [])

    async def test_mo_message_url_errors_are_logged(self) -> None:
        """A non-2xx answer from mo_message_url is logged; consuming goes on."""
        logs = LogCapture(self)
        driver, sink, _ = await self.setup()
        sink.response_code = 500
        await driver.receive("one")
        await sink.next()
        await wait_until(lambda: any("HTTP {code}" in f for f in logs.formats()))
        sink.response_code = 200
        await driver.receive("two")
        self.assertEqual((await sink.next()).body["content"], "two")

    async def test_failed_posts_are_retried_durably(self) -> None:
        """An MO message and an event whose POST fails (5xx) are retried through
        the broker, as jb retries its channels' posts, until delivered."""
        logs = LogCapture(self)
        retries = LogCapture(self, "junebug.http.delivery")

        def failures() -> int:
            return sum("HTTP {code}" in f for f in logs.formats())

        def delivered() -> int:
            return sum("Delivered to" in f for f in retries.formats())

        driver, sink, base = await self.setup()
        api = driver.api
        assert api is not None
        api.delivery.base_delay = 0.01  # the first retry after 1s, no jitter
        sink.response_code = 503
        msg = await driver.receive("again")
        first = await sink.next()
        self.assertEqual(first.body["message_id"], msg["message_id"])
        # the sink answers after handing the request over: wait for the 503
        await wait_until(lambda: failures() == 1)
        sink.response_code = 200
        retried = await sink.next()
        self.assertEqual((retried.path, retried.body), (first.path, first.body))
        self.assertNotIn("authorization", retried.headers)
        await wait_until(lambda: delivered() == 1)
        sink.response_code = 500
        message_id = await self.send(
            driver, event_url=base + "/ev", event_auth_token="sesame"
        )
        first = await sink.next()
        self.assertEqual((first.path, first.body["message_id"]), ("/ev", message_id))
        await wait_until(lambda: failures() == 2)
        sink.response_code = 200
        retried = await sink.next()
        self.assertEqual((retried.path, retried.body), ("/ev", first.body))
        self.assertEqual(retried.headers["authorization"], "Token sesame")

    async def test_refused_posts_go_to_the_dead_letter_queue(self) -> None:
        """A 4xx the receiver will not change its mind about is not retried: the
        delivery goes to ``junebug.http.dead`` (jb's /dead-letters/http shows and
        replays it)."""
        driver, sink, _ = await self.setup()
        sink.response_code = 400
        await driver.receive("refused")
        await sink.next()
        await wait_until(lambda: driver.broker.pending(DEAD_QUEUE) == 1)

    async def test_mo_message_url_timeout(self) -> None:
        """mo_message_url_timeout bounds the POST; the failure is logged."""
        logs = LogCapture(self)
        silent = _Silent()
        port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(
            Site(silent)
        )
        self.addCleanup(port.stopListening)
        url = f"http://127.0.0.1:{port.getHost().port}/mo"
        driver = MessageApiDriver(reactor)
        self.addCleanup(driver.stop)
        await driver.start(mo_message_url=url, mo_message_url_timeout=0.2)
        await driver.receive("slow")
        await wait_until(
            lambda: [
                e for e in logs.events if "timeout after 0.2s" in str(e.get("error"))
            ]
        )
