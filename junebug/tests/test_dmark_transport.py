"""The ``dmark`` channel type: a real HTTP client plays Dmark's USSD gateway."""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import urlencode

from treq.client import HTTPClient
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web._newclient import ResponseNeverReceived
from twisted.web.client import Agent, HTTPConnectionPool
from twisted.web.http_headers import Headers
from twisted.web.server import NOT_DONE_YET, Request
from twisted.web.test.requesthelper import DummyChannel

from junebug.converter import structure
from junebug.errors import ConfigError
from junebug.messages import Message, reply_to, user_message
from junebug.stores import keys
from junebug.testing.context import RecordingContext
from junebug.testing.polling import wait_until
from junebug.transports.dmark.transport import (
    DmarkConfig,
    DmarkTransport,
    fix_service_code,
)
from junebug.transports.registry import TransportRegistry

WEB_PATH = "/api/v1/dmark/ussd/"
DEFAULTS = {
    "transactionId": "transaction-123",
    "msisdn": "+00775551122",
    "ussdServiceCode": "*121#",
    "transactionTime": "1389971940",
    "ussdRequestString": "*121#",
    "creationTime": "1389971950",
    "response": "false",
}


class Client:
    """A plain HTTP client, with no persistent connections."""

    def __init__(self) -> None:
        self.pool = HTTPConnectionPool(reactor, persistent=False)
        self.http = HTTPClient(Agent(reactor, pool=self.pool))

    async def get(
        self, url: str, headers: dict[str, str] | None = None
    ) -> tuple[int, bytes, Headers]:
        response = await self.http.get(
            url, headers={k: [v] for k, v in (headers or {}).items()}
        )
        body = await response.content()
        return response.code, body, response.headers


def params(**overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {**DEFAULTS, **overrides}
    return {k: v for k, v in values.items() if v is not None}


# ---------------------------------------------------------------------------
# config


class DmarkConfigTests(SynchronousTestCase):
    def test_defaults(self) -> None:
        config = structure({"web_path": "/ussd"}, DmarkConfig)
        self.assertEqual(config.web_port, 0)
        self.assertEqual(config.path, "/ussd")
        self.assertEqual(config.health_path, "health")
        self.assertEqual(config.request_timeout, 240)
        self.assertEqual(config.request_timeout_status_code, 504)
        self.assertEqual(config.request_timeout_body, "")
        self.assertEqual(config.ussd_session_timeout, 600)
        self.assertFalse(config.fix_to_addr)
        self.assertEqual(config.validation_mode, "strict")
        self.assertIsNone(config.timeout_message)

    def test_vumi_keys_accepted(self) -> None:
        config = structure(
            {
                "web_path": "ussd",
                "web_port": 8080,
                "redis_manager": {"host": "x"},
                "transport_name": "t",
                "publish_status": True,
            },
            DmarkConfig,
        )
        self.assertEqual((config.path, config.web_port), ("/ussd", 8080))

    def test_web_path_required(self) -> None:
        with self.assertRaisesRegex(ConfigError, "web_path"):
            structure({"web_port": 80}, DmarkConfig)
        with self.assertRaisesRegex(ConfigError, "web_path"):
            structure({"web_path": "/"}, DmarkConfig)

    def test_bad_values(self) -> None:
        for bad, field in [
            ({"web_port": 70000}, "web_port"),
            ({"web_username": "u"}, "web_password"),
            ({"validation_mode": "lax"}, "validation_mode"),
            ({"request_timeout": 0}, "request_timeout"),
            ({"request_timeout_status_code": 42}, "request_timeout_status_code"),
            ({"ussd_session_timeout": 0}, "ussd_session_timeout"),
            ({"health_path": "/ussd/"}, "health_path"),
            ({"web_port": "80"}, "web_port"),
        ]:
            with self.assertRaisesRegex(ConfigError, field):
                structure({"web_path": "/ussd", **bad}, DmarkConfig)

    def test_registered_as_dmark(self) -> None:
        registry = TransportRegistry()
        self.assertIs(registry.resolve("dmark"), DmarkTransport)
        self.assertIn("dmark", registry.types())

    def test_fix_service_code(self) -> None:
        self.assertEqual(fix_service_code("121"), "*121#")
        self.assertEqual(fix_service_code("*121#"), "*121#")
        self.assertEqual(fix_service_code("*121"), "*121")
        self.assertEqual(fix_service_code("121#"), "121#")


# ---------------------------------------------------------------------------
# over real sockets


class DmarkTransportTests(TestCase):
    async def start(self, **config: Any) -> tuple[DmarkTransport, RecordingContext]:
        recorder = RecordingContext(reactor)
        cfg = structure(
            {
                "web_path": WEB_PATH,
                "web_port": 0,
                "web_interface": "127.0.0.1",
                **config,
            },
            DmarkConfig,
        )
        transport = DmarkTransport(recorder.context, cfg)
        await transport.start()
        self.addCleanup(transport.stop)
        self.client = Client()
        self.addCleanup(self.client.pool.closeCachedConnections)
        self.base = f"http://127.0.0.1:{transport.port}"
        return transport, recorder

    def request(
        self, path: str = WEB_PATH, headers: dict[str, str] | None = None, **query: Any
    ) -> Deferred[tuple[int, bytes, Headers]]:
        url = f"{self.base}{path}?{urlencode(params(**query))}"
        return Deferred.fromCoroutine(self.client.get(url, headers))

    async def test_new_session_and_reply(self) -> None:
        """A new transaction is a ``new`` MO without content; the reply answers
        the same request with action ``request``, then an ack is published."""
        transport, rec = await self.start()
        pending = self.request(ussdRequestString="SHOULD BE IGNORED")
        mo = await rec.next_inbound()
        self.assertEqual(mo["session_event"], "new")
        self.assertIsNone(mo["content"])
        self.assertEqual(mo["to_addr"], "*121#")
        self.assertEqual(mo["from_addr"], "+00775551122")
        self.assertEqual(mo["provider"], "dmark")
        self.assertEqual(mo["transport_type"], "ussd")
        self.assertEqual(mo["transport_name"], "chan-1")
        self.assertEqual(mo["helper_metadata"], {"session_id": "transaction-123"})
        self.assertEqual(
            mo["transport_metadata"],
            {
                "dmark_ussd": {
                    "transaction_id": "transaction-123",
                    "transaction_time": "1389971940",
                    "creation_time": "1389971950",
                }
            },
        )
        self.assertEqual(transport.server.pending, 1)
        reply = reply_to(mo, "Welcome!")
        await transport.handle_outbound(reply)
        code, body, headers = await pending
        self.assertEqual(code, 200)
        self.assertEqual(
            json.loads(body), {"responseString": "Welcome!", "action": "request"}
        )
        self.assertIn("application/json", headers.getRawHeaders("content-type")[0])
        [event] = rec.events
        self.assertEqual(event["event_type"], "ack")
        self.assertEqual(event["user_message_id"], reply["message_id"])
        self.assertEqual(event["sent_message_id"], reply["message_id"])
        self.assertEqual(transport.server.pending, 0)
        self.assertTrue(
            await rec.store.exists(keys.dmark_session("chan-1", "transaction-123"))
        )

    async def test_resume_then_end_with_continue_session_false(self) -> None:
        """The second request of a transaction is ``resume`` with the user's
        text; a reply with continue_session false ends the session."""
        transport, rec = await self.start()
        first = self.request()
        mo = await rec.next_inbound()
        await transport.handle_outbound(reply_to(mo, "Menu"))
        await first

        second = self.request(ussdRequestString="1", response="true")
        mo2 = await rec.next_inbound()
        self.assertEqual(mo2["session_event"], "resume")
        self.assertEqual(mo2["content"], "1")
        self.assertNotEqual(mo2["message_id"], mo["message_id"])
        reply = reply_to(mo2, "Bye", continue_session=False)
        reply["continue_session"] = False
        await transport.handle_outbound(reply)
        code, body, _ = await second
        self.assertEqual(code, 200)
        self.assertEqual(json.loads(body), {"responseString": "Bye", "action": "end"})
        self.assertEqual([e["event_type"] for e in rec.events], ["ack", "ack"])
        # The session is over: the same transaction id would start a new one.
        self.assertFalse(
            await rec.store.exists(keys.dmark_session("chan-1", "transaction-123"))
        )

    async def test_continue_session_false_alone_ends(self) -> None:
        """A message that only carries continue_session: false also ends."""
        transport, rec = await self.start()
        pending = self.request()
        mo = await rec.next_inbound()
        reply = reply_to(mo, "Bye")
        reply["continue_session"] = False
        await transport.handle_outbound(reply)
        _, body, _ = await pending
        self.assertEqual(json.loads(body)["action"], "end")

    async def test_close_without_content(self) -> None:
        """A closing reply may have no content: the answer is an empty end."""
        transport, rec = await self.start()
        pending = self.request()
        mo = await rec.next_inbound()
        await transport.handle_outbound(reply_to(mo, None, continue_session=False))
        _, body, _ = await pending
        self.assertEqual(json.loads(body), {"responseString": "", "action": "end"})
        self.assertEqual(rec.events[0]["event_type"], "ack")

    async def test_fix_to_addr(self) -> None:
        transport, rec = await self.start(fix_to_addr=True)
        pending = self.request(ussdServiceCode="121")
        mo = await rec.next_inbound()
        self.assertEqual(mo["to_addr"], "*121#")
        await transport.handle_outbound(reply_to(mo, "x"))
        await pending

    async def test_missing_parameters(self) -> None:
        """Missing parameters: 400 listing them, and a ``down`` request status."""
        _transport, rec = await self.start()
        code, body, _ = await self.request(
            transactionId=None, response=None, transactionTime=None
        )
        self.assertEqual(code, 400)
        self.assertEqual(
            json.loads(body),
            {"missing_parameter": ["response", "transactionId", "transactionTime"]},
        )
        status = await rec.next_status()
        self.assertEqual(
            (status["component"], status["status"], status["type"]),
            ("request", "down", "invalid_inbound_fields"),
        )
        self.assertEqual(status["message"], "Invalid inbound fields")
        self.assertEqual(
            status["details"]["missing_parameter"],
            ["response", "transactionId", "transactionTime"],
        )
        self.assertEqual(rec.inbound, [])

    async def test_unexpected_parameters_strict(self) -> None:
        _transport, rec = await self.start()
        code, body, _ = await self.request(unexpected_p1="", unexpected_p2="")
        self.assertEqual(code, 400)
        self.assertEqual(
            json.loads(body),
            {"unexpected_parameter": ["unexpected_p1", "unexpected_p2"]},
        )
        self.assertEqual(rec.inbound, [])

    async def test_unexpected_parameters_permissive(self) -> None:
        transport, rec = await self.start(validation_mode="permissive")
        pending = self.request(extra="1")
        mo = await rec.next_inbound()
        await transport.handle_outbound(reply_to(mo, "ok"))
        code, _, _ = await pending
        self.assertEqual(code, 200)

    async def test_invalid_encoding(self) -> None:
        _transport, rec = await self.start()
        query = urlencode(params(ussdRequestString="Who?".encode("utf-32")))
        code, body, _ = await self.client.get(f"{self.base}{WEB_PATH}?{query}")
        self.assertEqual(code, 400)
        described = json.loads(body)["invalid_request"]
        self.assertEqual(described["method"], "GET")
        self.assertEqual(described["path"], WEB_PATH)
        status = await rec.next_status()
        self.assertEqual(
            (status["component"], status["status"], status["type"]),
            ("request", "down", "invalid_encoding"),
        )
        self.assertEqual(status["details"]["invalid_encoding"], ["ussdRequestString"])

    async def test_statuses(self) -> None:
        """A parsed request is ``request_parsed``; a quick reply ``response_sent``;
        an unchanged status is not published twice."""
        transport, rec = await self.start()
        for _ in range(2):
            pending = self.request()
            mo = await rec.next_inbound()
            await transport.handle_outbound(reply_to(mo, "hi"))
            await pending
        await transport.stop()  # waits for status publishing
        self.assertEqual(
            rec.status_types(),
            [("request", "ok", "request_parsed"), ("response", "ok", "response_sent")],
        )

    async def test_nack_missing_fields(self) -> None:
        transport, rec = await self.start()
        msg = user_message(to_addr="+1", from_addr="*121#", transport_name="chan-1")
        await transport.handle_outbound(msg)
        [event] = rec.events
        self.assertEqual(event["event_type"], "nack")
        self.assertEqual(event["nack_reason"], "Missing fields: in_reply_to, content")
        self.assertEqual(event["user_message_id"], msg["message_id"])

    async def test_nack_unknown_request(self) -> None:
        transport, rec = await self.start()
        msg = user_message(
            to_addr="+1",
            from_addr="*121#",
            transport_name="chan-1",
            content="late",
            in_reply_to="no-such-request",
        )
        await transport.handle_outbound(msg)
        [event] = rec.events
        self.assertEqual(event["event_type"], "nack")
        self.assertEqual(event["nack_reason"], "Could not find original request.")

    async def test_timeout_ends_session(self) -> None:
        """No reply in time: the request is answered 504, the session is
        forgotten, a ``close`` MO and a ``timeout`` status are published, and a
        late reply is nacked."""
        transport, rec = await self.start(request_timeout=0.2)
        pending = self.request()
        mo = await rec.next_inbound()
        code, body, _ = await pending
        self.assertEqual((code, body), (504, b""))
        close = await rec.next_inbound()
        self.assertEqual(close["session_event"], "close")
        self.assertIsNone(close["content"])
        self.assertEqual(
            (close["from_addr"], close["to_addr"]), (mo["from_addr"], mo["to_addr"])
        )
        self.assertEqual(close["helper_metadata"], {"session_id": "transaction-123"})
        self.assertFalse(
            await rec.store.exists(keys.dmark_session("chan-1", "transaction-123"))
        )
        await transport.handle_outbound(reply_to(mo, "too late"))
        self.assertEqual(
            rec.events[-1]["nack_reason"], "Could not find original request."
        )
        await transport.stop()
        self.assertIn(("response", "down", "timeout"), rec.status_types())
        [timeout] = [s for s in rec.statuses if s["type"] == "timeout"]
        self.assertEqual(timeout["message"], "Response timed out")
        self.assertIn("0.2", timeout["reasons"][0])

    async def test_timeout_message(self) -> None:
        """With timeout_message, a timed-out request ends the USSD session
        with that text."""
        _transport, _rec = await self.start(
            request_timeout=0.2, timeout_message="Sorry"
        )
        code, body, _ = await self.request()
        self.assertEqual(code, 200)
        self.assertEqual(json.loads(body), {"responseString": "Sorry", "action": "end"})

    async def test_custom_timeout_response(self) -> None:
        _transport, _rec = await self.start(
            request_timeout=0.2,
            request_timeout_status_code=503,
            request_timeout_body="busy",
        )
        code, body, _ = await self.request()
        self.assertEqual((code, body), (503, b"busy"))

    async def test_basic_auth(self) -> None:
        transport, rec = await self.start(web_username="dmark", web_password="s3cret")
        code, _, headers = await self.request()
        self.assertEqual(code, 401)
        self.assertEqual(
            headers.getRawHeaders("www-authenticate"), ['Basic realm="Junebug"']
        )
        wrong = base64.b64encode(b"dmark:nope").decode()
        code, _, _ = await self.request(headers={"Authorization": f"Basic {wrong}"})
        self.assertEqual(code, 401)
        self.assertEqual(rec.inbound, [])
        right = base64.b64encode(b"dmark:s3cret").decode()
        pending = self.request(headers={"Authorization": f"Basic {right}"})
        mo = await rec.next_inbound()
        await transport.handle_outbound(reply_to(mo, "in"))
        code, _, _ = await pending
        self.assertEqual(code, 200)

    async def test_health_and_unknown_paths(self) -> None:
        transport, rec = await self.start(web_username="u", web_password="p")
        pending = self.request(headers={"Authorization": "Basic dTpw"})
        mo = await rec.next_inbound()
        code, body, _ = await self.client.get(f"{self.base}/health")
        self.assertEqual(code, 200)
        self.assertEqual(json.loads(body), {"pending_requests": 1})
        code, _, _ = await self.client.get(f"{self.base}/elsewhere")
        self.assertEqual(code, 404)
        await transport.handle_outbound(reply_to(mo, "x"))
        await pending

    async def test_web_path_without_slashes(self) -> None:
        transport, rec = await self.start(web_path="dmark")
        pending = self.request(path="/dmark")
        mo = await rec.next_inbound()
        await transport.handle_outbound(reply_to(mo, "x"))
        code, _, _ = await pending
        self.assertEqual(code, 200)

    async def test_publish_failure_is_503(self) -> None:
        transport, rec = await self.start()
        rec.fail_inbound = True
        code, _, _ = await self.request()
        self.assertEqual(code, 503)
        self.assertEqual(transport.server.pending, 0)
        self.flushLoggedErrors(RuntimeError)

    async def test_stop_answers_held_requests(self) -> None:
        """Stopping answers held requests 503 and closes every connection."""
        transport, rec = await self.start()
        pending = self.request()
        await rec.next_inbound()
        await transport.stop()
        code, _, _ = await pending
        self.assertEqual(code, 503)
        self.assertIsNone(transport.port)
        await transport.stop()  # twice is fine

    async def test_client_gone(self) -> None:
        """A client that hangs up is forgotten; its reply is nacked."""
        transport, rec = await self.start()
        pending = self.request()
        mo = await rec.next_inbound()
        pending.cancel()
        with self.assertRaises(ResponseNeverReceived):
            await pending
        await wait_until(lambda: transport.server.pending == 0)
        await transport.handle_outbound(reply_to(mo, "anyone?"))
        self.assertEqual(rec.events[-1]["event_type"], "nack")


# ---------------------------------------------------------------------------
# response-time statuses, on a fake clock


def make_request(query: dict[str, str], path: bytes = WEB_PATH.encode()) -> Request:
    request = Request(DummyChannel())
    request.method = b"GET"
    request.path = path
    request.uri = path + b"?" + urlencode(query).encode()
    request.args = {k.encode(): [v.encode()] for k, v in query.items()}
    return request


class ResponseTimeTests(TestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.rec = RecordingContext(self.clock)
        config = structure({"web_path": WEB_PATH}, DmarkConfig)
        self.transport = DmarkTransport(self.rec.context, config)

    async def roundtrip(self, delay: float) -> Message:
        request = make_request(params())
        self.assertEqual(self.transport.server.dispatch(request), NOT_DONE_YET)
        mo = await self.rec.next_inbound(clock=self.clock)
        self.clock.advance(delay)
        await self.transport.handle_outbound(reply_to(mo, "x"))
        self.assertTrue(request.finished)
        statuses = [s for s in self.rec.statuses if s["component"] == "response"]
        return statuses[-1]

    async def test_quick(self) -> None:
        status = await self.roundtrip(0.5)
        self.assertEqual((status["status"], status["type"]), ("ok", "response_sent"))
        self.assertEqual(status["message"], "Response sent")

    async def test_slow(self) -> None:
        status = await self.roundtrip(1.1)
        self.assertEqual(
            (status["status"], status["type"]), ("degraded", "slow_response")
        )
        self.assertEqual(status["message"], "Slow response")
        self.assertIn("1.0", status["reasons"][0])

    async def test_very_slow(self) -> None:
        status = await self.roundtrip(10.1)
        self.assertEqual(
            (status["status"], status["type"]), ("down", "very_slow_response")
        )
        self.assertEqual(status["message"], "Very slow response")
        self.assertIn("10.0", status["reasons"][0])

    async def test_timeout_on_clock(self) -> None:
        request = make_request(params())
        self.transport.server.dispatch(request)
        await self.rec.next_inbound(clock=self.clock)
        self.clock.advance(239)
        self.assertFalse(request.finished)
        self.clock.advance(1)
        self.assertTrue(request.finished)
        self.assertEqual(request.code, 504)
        close = await self.rec.next_inbound(clock=self.clock)
        self.assertEqual(close["session_event"], "close")
        [status] = [s for s in self.rec.statuses if s["type"] == "timeout"]
        self.assertEqual(status["details"], {"response_time": 240})

    async def test_session_expires(self) -> None:
        """A transaction unseen for ussd_session_timeout seconds starts anew."""
        request = make_request(params())
        self.transport.server.dispatch(request)
        mo = await self.rec.next_inbound(clock=self.clock)
        await self.transport.handle_outbound(reply_to(mo, "x"))
        self.clock.advance(599)
        self.transport.server.dispatch(make_request(params()))
        mo = await self.rec.next_inbound(clock=self.clock)
        self.assertEqual(mo["session_event"], "resume")
        await self.transport.handle_outbound(reply_to(mo, "x"))
        self.clock.advance(601)
        self.transport.server.dispatch(make_request(params()))
        mo = await self.rec.next_inbound(clock=self.clock)
        self.assertEqual(mo["session_event"], "new")
        await self.transport.handle_outbound(reply_to(mo, "x"))
