"""The ``http`` channel type against a local HTTP peer playing the aggregator."""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import urlencode

from treq.client import HTTPClient
from twisted.internet import reactor
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.client import Agent, HTTPConnectionPool

from junebug.converter import structure
from junebug.errors import ConfigError
from junebug.messages import Message, user_message
from junebug.stores import keys
from junebug.testing.api import ApiDriver
from junebug.testing.context import RecordingContext
from junebug.testing.http_peer import HttpPeer
from junebug.testing.http_sink import HttpSink
from junebug.tests.support.process import free_port
from junebug.transports.http.config import HttpConfig
from junebug.transports.http.template import (
    check_template,
    flatten,
    lookup,
    render,
)
from junebug.transports.http.transport import HttpTransport
from junebug.transports.registry import TransportRegistry


def mt(content: str | None = "hello", **kw: Any) -> Message:
    fields: dict[str, Any] = {
        "to_addr": "+27820001111",
        "from_addr": "12345",
        "transport_name": "chan-1",
        "content": content,
    }
    fields.update(kw)
    return user_message(**fields)


# ---------------------------------------------------------------------------
# templates and config


class TemplateTests(SynchronousTestCase):
    VARS = {"to": "+27 82", "from": None, "content": "a&b", "message_id": "m1"}

    def test_whole_placeholder_keeps_the_value(self) -> None:
        self.assertIsNone(render("{from}", self.VARS))
        self.assertEqual(render("{to}", self.VARS), "+27 82")
        self.assertEqual(
            render({"x": ["{message_id}", 3, True]}, self.VARS), {"x": ["m1", 3, True]}
        )

    def test_text_substitution(self) -> None:
        self.assertEqual(render("to={to}, from={from}", self.VARS), "to=+27 82, from=")
        self.assertEqual(render("{{literal}} {to}", self.VARS), "{literal} +27 82")

    def test_quoting(self) -> None:
        self.assertEqual(
            render("http://x/{to}?t={content}", self.VARS, quote=lambda t: t.upper()),
            "http://x/+27 82?t=A&B",
        )

    def test_check(self) -> None:
        check_template({"a": ["{to}", {"b": "{content} {{x}}"}], "n": 1}, "t")
        with self.assertRaisesRegex(
            ConfigError, r"t\.a\.0: unknown placeholder \{too\}"
        ):
            check_template({"a": ["{too}"]}, "t")
        with self.assertRaisesRegex(ConfigError, "unbalanced"):
            check_template("{to", "t")

    def test_lookup(self) -> None:
        data = {"results": [{"from": "1", "n": {"x": 0}}], "a": None}
        self.assertEqual(lookup(data, "results.0.from"), "1")
        self.assertEqual(lookup(data, "results.-1.n.x"), 0)
        self.assertIsNone(lookup(data, "results.1.from"))
        self.assertIsNone(lookup(data, "a.b"))
        self.assertIsNone(lookup(data, "missing"))
        self.assertIsNone(lookup("text", "x"))

    def test_flatten(self) -> None:
        self.assertEqual(
            flatten({"a": "1", "b": None, "c": True, "d": ["x", "y"], "e": 2}),
            [("a", "1"), ("c", "true"), ("d", "x"), ("d", "y"), ("e", "2")],
        )


class HttpConfigTests(SynchronousTestCase):
    def config(self, **kw: Any) -> HttpConfig:
        return structure({"send_url": "http://agg/send", **kw}, HttpConfig)

    def test_defaults(self) -> None:
        config = self.config()
        self.assertEqual(config.send_method, "POST")
        self.assertEqual(config.send_format, "json")
        self.assertEqual(
            config.body_template,
            {
                "to": "{to}",
                "from": "{from}",
                "content": "{content}",
                "message_id": "{message_id}",
            },
        )
        self.assertIsNone(config.web_path)
        self.assertEqual(config.timeout, 10.0)
        self.assertEqual(config.message_id_ttl, 604800)
        self.assertEqual(config.transport_type, "sms")
        self.assertEqual(config.status_map["DELIVRD".lower()], "delivered")
        self.assertEqual(self.config(method="get").send_format, "query")

    def test_webhook_paths(self) -> None:
        config = self.config(web_path="/agg/", inbound_path="/mo/", dlr_path="dr")
        self.assertEqual(config.inbound_url_path, "/agg/mo")
        self.assertEqual(config.dlr_url_path, "/agg/dr")

    def test_errors(self) -> None:
        for bad, field in [
            ({"send_url": ""}, "send_url"),
            ({"send_url": "ftp://x"}, "send_url"),
            ({"send_url": "http://x/{nope}"}, "send_url"),
            ({"method": "DELETE"}, "method"),
            ({"method": "GET", "body_format": "json"}, "body_format"),
            ({"body_format": "xml"}, "body_format"),
            ({"body_template": {"a": "{bad}"}}, "body_template.a"),
            ({"body_format": "form", "body_template": {"a": {"b": 1}}}, "flat"),
            ({"auth": {"type": "oauth"}}, "auth.type"),
            ({"auth": {"type": "basic", "username": "u"}}, "auth.password"),
            ({"auth": {"type": "token"}}, "auth.token"),
            ({"auth": {"type": "header", "header": "X-Key"}}, "auth.value"),
            ({"response_id_pattern": "Success"}, "group"),
            ({"response_id_pattern": "("}, "response_id_pattern"),
            ({"response_id_field": "a..b"}, "response_id_field"),
            ({"inbound_fields": {"sender": "x"}}, "inbound_fields.sender"),
            ({"dlr_fields": {"id": ""}}, "dlr_fields.id"),
            ({"dlr_status_map": {"OK": "fine"}}, "dlr_status_map.OK"),
            ({"dlr_default_status": "maybe"}, "dlr_default_status"),
            ({"web_path": "/a", "inbound_path": "x", "dlr_path": "/x/"}, "dlr_path"),
            ({"timeout": 0}, "timeout"),
        ]:
            with self.assertRaisesRegex(ConfigError, field, msg=repr(bad)):
                self.config(**bad)

    def test_registered_as_http(self) -> None:
        self.assertIs(TransportRegistry().resolve("http"), HttpTransport)


# ---------------------------------------------------------------------------
# sending


class Harness:
    def __init__(self, case: TestCase) -> None:
        self.case = case
        self.peer = HttpPeer(reactor)
        self.rec = RecordingContext(reactor)
        self.transport: HttpTransport | None = None
        pool = HTTPConnectionPool(reactor, persistent=False)
        self.http = HTTPClient(Agent(reactor, pool=pool))
        case.addCleanup(pool.closeCachedConnections)

    async def start(self, **config: Any) -> HttpTransport:
        base = await self.peer.start()
        self.case.addCleanup(self.peer.stop)
        self.base = base
        config.setdefault("send_url", base + "/send")
        cfg = structure(config, HttpConfig)
        self.transport = HttpTransport(self.rec.context, cfg)
        await self.transport.start()
        self.case.addCleanup(self.transport.stop)
        return self.transport

    def hook_url(self, path: str) -> str:
        assert self.transport is not None
        return f"http://127.0.0.1:{self.transport.port}{path}"

    async def post(
        self,
        path: str,
        body: Any = None,
        form: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        method: str = "POST",
    ) -> tuple[int, Any]:
        hdrs = {k: [v] for k, v in (headers or {}).items()}
        data: bytes | None = None
        if form is not None:
            data = urlencode(form).encode()
            hdrs["Content-Type"] = ["application/x-www-form-urlencoded"]
        elif body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            hdrs.setdefault("Content-Type", ["application/json"])
        response = await self.http.request(
            method, self.hook_url(path), data=data, headers=hdrs
        )
        content = await response.content()
        try:
            return response.code, json.loads(content)
        except ValueError:
            return response.code, content


class SendTests(TestCase):
    async def test_default_json_post(self) -> None:
        """An MT message is POSTed as the default JSON body; a 2xx is an ack
        whose sent_message_id is our id."""
        h = Harness(self)
        transport = await h.start()
        msg = mt()
        await transport.handle_outbound(msg)
        req = await h.peer.next()
        self.assertEqual((req.method, req.path), ("POST", "/send"))
        self.assertEqual(req.headers["content-type"], "application/json")
        self.assertNotIn("authorization", req.headers)
        self.assertEqual(
            req.json(),
            {
                "to": "+27820001111",
                "from": "12345",
                "content": "hello",
                "message_id": msg["message_id"],
            },
        )
        [event] = h.rec.events
        self.assertEqual(event["event_type"], "ack")
        self.assertEqual(event["user_message_id"], msg["message_id"])
        self.assertEqual(event["sent_message_id"], msg["message_id"])
        await transport.stop()
        self.assertEqual(h.rec.status_types(), [("send", "ok", "sent")])

    async def test_custom_template_headers_and_default_from(self) -> None:
        h = Harness(self)
        transport = await h.start(
            body_template={
                "messages": [
                    {
                        "destinations": [{"to": "{to}"}],
                        "from": "{from}",
                        "text": "{content}",
                        "ref": "{channel_id}:{message_id}",
                    }
                ],
                "flash": False,
            },
            headers={"X-Extra": "1"},
            default_from="MyBrand",
            method="put",
        )
        msg = mt(from_addr=None, content="Ünïcode ✓")
        await transport.handle_outbound(msg)
        req = await h.peer.next()
        self.assertEqual(req.method, "PUT")
        self.assertEqual(req.headers["x-extra"], "1")
        self.assertEqual(
            req.json(),
            {
                "messages": [
                    {
                        "destinations": [{"to": "+27820001111"}],
                        "from": "MyBrand",
                        "text": "Ünïcode ✓",
                        "ref": f"chan-1:{msg['message_id']}",
                    }
                ],
                "flash": False,
            },
        )

    async def test_token_auth(self) -> None:
        h = Harness(self)
        transport = await h.start(auth={"type": "token", "token": "abc"})
        await transport.handle_outbound(mt())
        self.assertEqual((await h.peer.next()).headers["authorization"], "Bearer abc")

    async def test_token_auth_scheme(self) -> None:
        h = Harness(self)
        transport = await h.start(
            auth={"type": "token", "token": "abc", "scheme": "App"}
        )
        await transport.handle_outbound(mt())
        self.assertEqual((await h.peer.next()).headers["authorization"], "App abc")

    async def test_basic_auth(self) -> None:
        h = Harness(self)
        transport = await h.start(
            auth={"type": "basic", "username": "user", "password": "p@ss:word"}
        )
        await transport.handle_outbound(mt())
        expected = "Basic " + base64.b64encode(b"user:p@ss:word").decode()
        self.assertEqual((await h.peer.next()).headers["authorization"], expected)

    async def test_basic_auth_from_url(self) -> None:
        h = Harness(self)
        base = await h.peer.start()
        self.addCleanup(h.peer.stop)
        url = base.replace("http://", "http://u:secret@") + "/send"
        transport = HttpTransport(
            h.rec.context, structure({"send_url": url}, HttpConfig)
        )
        await transport.start()
        self.addCleanup(transport.stop)
        await transport.handle_outbound(mt())
        expected = "Basic " + base64.b64encode(b"u:secret").decode()
        self.assertEqual((await h.peer.next()).headers["authorization"], expected)

    async def test_header_auth(self) -> None:
        h = Harness(self)
        transport = await h.start(
            auth={"type": "header", "header": "X-API-Key", "value": "k1"}
        )
        await transport.handle_outbound(mt())
        self.assertEqual((await h.peer.next()).headers["x-api-key"], "k1")

    async def test_form_body(self) -> None:
        h = Harness(self)
        transport = await h.start(
            body_format="form",
            body_template={
                "to": "{to}",
                "from": "{from}",
                "text": "{content}",
                "dlr": "yes",
                "group": "{group}",
            },
        )
        await transport.handle_outbound(mt(content="a&b=c"))
        req = await h.peer.next()
        self.assertEqual(
            req.headers["content-type"], "application/x-www-form-urlencoded"
        )
        self.assertEqual(
            req.args,
            {
                "to": ["+27820001111"],
                "from": ["12345"],
                "text": ["a&b=c"],
                "dlr": ["yes"],
            },
        )

    async def test_get_query_and_url_template(self) -> None:
        """A GET sends the template as the query; URL placeholders are quoted."""
        h = Harness(self)
        base = await h.peer.start()
        self.addCleanup(h.peer.stop)
        config = structure(
            {
                "send_url": base + "/send/{to}?username=jb",
                "method": "GET",
                "body_template": {"to": "{to}", "content": "{content}"},
            },
            HttpConfig,
        )
        transport = HttpTransport(h.rec.context, config)
        await transport.start()
        self.addCleanup(transport.stop)
        await transport.handle_outbound(mt(to_addr="+27 82/1", content="hi there"))
        req = await h.peer.next()
        self.assertEqual(req.method, "GET")
        self.assertEqual(req.path, "/send/%2B27%2082%2F1")
        self.assertEqual(
            req.args, {"username": ["jb"], "to": ["+27 82/1"], "content": ["hi there"]}
        )
        self.assertEqual(req.body, b"")

    async def test_error_answer_is_a_nack(self) -> None:
        h = Harness(self)
        transport = await h.start()
        h.peer.answer(422, {"error": "invalid\nnumber"})
        msg = mt()
        await transport.handle_outbound(msg)
        [event] = h.rec.events
        self.assertEqual(event["event_type"], "nack")
        self.assertEqual(event["user_message_id"], msg["message_id"])
        self.assertEqual(
            event["nack_reason"], 'HTTP 422: {"error": "invalid\\nnumber"}'
        )
        await transport.handle_outbound(mt())
        await transport.handle_outbound(mt())
        await transport.stop()
        self.assertEqual(
            h.rec.status_types(),
            [("send", "down", "send_failed"), ("send", "ok", "sent")],
        )

    async def test_connection_refused_is_a_nack(self) -> None:
        h = Harness(self)
        transport = await h.start(send_url=f"http://127.0.0.1:{free_port()}/send")
        await transport.handle_outbound(mt())
        [event] = h.rec.events
        self.assertEqual(event["event_type"], "nack")
        self.assertIn("ConnectionRefused", event["nack_reason"])

    async def test_timeout_is_a_nack(self) -> None:
        h = Harness(self)
        transport = await h.start(timeout=0.2)
        h.peer.answer(200, delay=5)
        await transport.handle_outbound(mt())
        [event] = h.rec.events
        self.assertEqual(event["nack_reason"], "timeout after 0.2s")

    async def test_missing_to_addr(self) -> None:
        h = Harness(self)
        transport = await h.start()
        await transport.handle_outbound(mt(to_addr=None))
        self.assertEqual(h.rec.events[0]["nack_reason"], "Missing fields: to_addr")
        self.assertEqual(h.peer.requests, [])

    async def test_response_id_field(self) -> None:
        """The aggregator's id is the ack's sent_message_id and is remembered
        (with a TTL) for delivery reports."""
        h = Harness(self)
        transport = await h.start(
            response_id_field="messages.0.messageId", message_id_ttl=3600
        )
        h.peer.answer(200, {"messages": [{"messageId": "agg-77", "status": "PENDING"}]})
        msg = mt()
        await transport.handle_outbound(msg)
        self.assertEqual(h.rec.events[0]["sent_message_id"], "agg-77")
        key = keys.http_provider_message("chan-1", "agg-77")
        self.assertEqual(await h.rec.store.get(key), msg["message_id"])
        ttl = await h.rec.store.ttl(key)
        assert ttl is not None
        self.assertTrue(3500 < ttl <= 3600)

    async def test_response_id_missing(self) -> None:
        h = Harness(self)
        transport = await h.start(response_id_field="id")
        h.peer.answer(200, "not json")
        msg = mt()
        await transport.handle_outbound(msg)
        self.assertEqual(h.rec.events[0]["event_type"], "ack")
        self.assertEqual(h.rec.events[0]["sent_message_id"], msg["message_id"])

    async def test_response_id_pattern(self) -> None:
        """Jasmin's HTTP API answers ``Success "<id>"`` in plain text."""
        h = Harness(self)
        transport = await h.start(response_id_pattern=r'Success "([^"]+)"')
        h.peer.answer(200, 'Success "ee87583d-8f11"')
        await transport.handle_outbound(mt())
        self.assertEqual(h.rec.events[0]["sent_message_id"], "ee87583d-8f11")


# ---------------------------------------------------------------------------
# webhooks


WEBHOOKS = {"web_path": "/agg", "web_port": 0, "web_interface": "127.0.0.1"}


class InboundWebhookTests(TestCase):
    async def test_json_inbound(self) -> None:
        h = Harness(self)
        await h.start(**WEBHOOKS, provider="acme")
        code, body = await h.post(
            "/agg/inbound", {"from": "+2782", "to": "1234", "content": "hi", "id": 9}
        )
        self.assertEqual((code, body), (200, {"status": "ok"}))
        [mo] = h.rec.inbound
        self.assertEqual(
            (mo["from_addr"], mo["to_addr"], mo["content"]), ("+2782", "1234", "hi")
        )
        self.assertEqual(mo["transport_type"], "sms")
        self.assertEqual(mo["provider"], "acme")
        self.assertIsNone(mo["session_event"])
        self.assertEqual(
            mo["transport_metadata"], {"http": {"provider_message_id": "9"}}
        )
        self.assertEqual(mo["transport_name"], "chan-1")

    async def test_form_and_query_inbound_with_mapping(self) -> None:
        h = Harness(self)
        await h.start(
            **WEBHOOKS,
            inbound_fields={"from": "msisdn", "to": "shortcode", "content": "text"},
            webhook_response="ACK/Jasmin",
            webhook_response_content_type="text/plain",
        )
        code, body = await h.post(
            "/agg/inbound", form={"msisdn": "+1", "shortcode": "55", "text": "a b"}
        )
        self.assertEqual((code, body), (200, b"ACK/Jasmin"))
        query = urlencode({"msisdn": "+2", "shortcode": "55", "text": "q"})
        code, _ = await h.post(f"/agg/inbound?{query}", method="GET")
        self.assertEqual(code, 200)
        self.assertEqual(
            [(m["from_addr"], m["to_addr"], m["content"]) for m in h.rec.inbound],
            [("+1", "55", "a b"), ("+2", "55", "q")],
        )

    async def test_to_defaults_to_default_from(self) -> None:
        h = Harness(self)
        await h.start(**WEBHOOKS, default_from="5555")
        code, _ = await h.post("/agg/inbound", {"from": "+1", "content": "x"})
        self.assertEqual(code, 200)
        self.assertEqual(h.rec.inbound[0]["to_addr"], "5555")

    async def test_list_of_messages(self) -> None:
        """Aggregators that batch (Infobip's ``results``) are read item by item."""
        h = Harness(self)
        await h.start(
            **WEBHOOKS,
            inbound_list_field="results",
            inbound_fields={
                "from": "from",
                "to": "to",
                "content": "message.text",
                "message_id": "messageId",
            },
        )
        code, _ = await h.post(
            "/agg/inbound",
            {
                "results": [
                    {
                        "from": "1",
                        "to": "9",
                        "message": {"text": "a"},
                        "messageId": "x1",
                    },
                    {
                        "from": "2",
                        "to": "9",
                        "message": {"text": "b"},
                        "messageId": "x2",
                    },
                ]
            },
        )
        self.assertEqual(code, 200)
        self.assertEqual([m["content"] for m in h.rec.inbound], ["a", "b"])

    async def test_missing_from_is_400(self) -> None:
        h = Harness(self)
        await h.start(**WEBHOOKS)
        code, body = await h.post("/agg/inbound", {"to": "1", "content": "x"})
        self.assertEqual(code, 400)
        self.assertEqual(body["error"], "Invalid inbound fields")
        self.assertEqual(body["errors"], ["item 0: missing from (from)"])
        self.assertEqual(h.rec.inbound, [])
        status = await h.rec.next_status()
        self.assertEqual(
            (status["component"], status["status"], status["type"]),
            ("inbound", "down", "invalid_inbound_fields"),
        )

    async def test_bad_json_and_bad_list(self) -> None:
        h = Harness(self)
        await h.start(**WEBHOOKS, inbound_list_field="results")
        code, body = await h.post("/agg/inbound", b"{nope")
        self.assertEqual((code, body["error"]), (400, "The body is not valid JSON"))
        code, body = await h.post("/agg/inbound", {"results": "x"})
        self.assertEqual((code, body["error"]), (400, "No list of items at 'results'"))

    async def test_webhook_token(self) -> None:
        h = Harness(self)
        await h.start(**WEBHOOKS, webhook_token="t0k")
        payload = {"from": "1", "to": "2", "content": "x"}
        code, _ = await h.post("/agg/inbound", payload)
        self.assertEqual(code, 401)
        code, _ = await h.post(
            "/agg/inbound", payload, headers={"X-Webhook-Token": "bad"}
        )
        self.assertEqual(code, 401)
        code, _ = await h.post(
            "/agg/inbound", payload, headers={"X-Webhook-Token": "t0k"}
        )
        self.assertEqual(code, 200)
        code, _ = await h.post("/agg/inbound?token=t0k", payload)
        self.assertEqual(code, 200)
        self.assertEqual(len(h.rec.inbound), 2)

    async def test_webhook_bearer_token(self) -> None:
        h = Harness(self)
        await h.start(
            **WEBHOOKS, webhook_token="t0k", webhook_token_header="Authorization"
        )
        code, _ = await h.post(
            "/agg/inbound",
            {"from": "1", "to": "2"},
            headers={"Authorization": "Bearer t0k"},
        )
        self.assertEqual(code, 200)

    async def test_basic_auth(self) -> None:
        h = Harness(self)
        await h.start(**WEBHOOKS, web_username="agg", web_password="pw")
        payload = {"from": "1", "to": "2", "content": "x"}
        code, _ = await h.post("/agg/inbound", payload)
        self.assertEqual(code, 401)
        auth = "Basic " + base64.b64encode(b"agg:pw").decode()
        code, _ = await h.post("/agg/inbound", payload, headers={"Authorization": auth})
        self.assertEqual(code, 200)

    async def test_unknown_path_and_no_web_path(self) -> None:
        h = Harness(self)
        await h.start(**WEBHOOKS)
        code, _ = await h.post("/agg/other", {})
        self.assertEqual(code, 404)
        h2 = Harness(self)
        transport = await h2.start()
        self.assertIsNone(transport.port)

    async def test_publish_failure_is_503(self) -> None:
        h = Harness(self)
        await h.start(**WEBHOOKS)
        h.rec.fail_inbound = True
        code, _ = await h.post("/agg/inbound", {"from": "1", "to": "2"})
        self.assertEqual(code, 503)
        self.flushLoggedErrors(RuntimeError)


class DeliveryReportTests(TestCase):
    async def test_statuses_mapped(self) -> None:
        """Without correlation, reports carry our message id; statuses map to
        delivered / failed / pending; unknown statuses are ignored."""
        h = Harness(self)
        await h.start(**WEBHOOKS, dlr_status_map={"OK": "delivered"})
        for status in ("DELIVRD", "undeliv", "ENROUTE", "ok", "weird"):
            code, body = await h.post("/agg/dlr", {"id": "m1", "status": status})
            self.assertEqual((code, body), (200, {"status": "ok"}))
        self.assertEqual(
            [
                (e["event_type"], e["user_message_id"], e["delivery_status"])
                for e in h.rec.events
            ],
            [
                ("delivery_report", "m1", "delivered"),
                ("delivery_report", "m1", "failed"),
                ("delivery_report", "m1", "pending"),
                ("delivery_report", "m1", "delivered"),
            ],
        )
        self.assertEqual(
            h.rec.events[0]["transport_metadata"],
            {"http": {"provider_message_id": "m1", "status": "DELIVRD"}},
        )

    async def test_default_status(self) -> None:
        h = Harness(self)
        await h.start(**WEBHOOKS, dlr_default_status="failed")
        await h.post("/agg/dlr", {"id": "m1", "status": "weird"})
        self.assertEqual(h.rec.events[0]["delivery_status"], "failed")

    async def test_form_dlr_with_mapping_and_list(self) -> None:
        h = Harness(self)
        await h.start(
            **WEBHOOKS, dlr_fields={"id": "msgid", "status": "message_status"}
        )
        code, _ = await h.post(
            "/agg/dlr", form={"msgid": "m2", "message_status": "DELIVRD"}
        )
        self.assertEqual(code, 200)
        self.assertEqual(h.rec.events[0]["user_message_id"], "m2")

    async def test_missing_fields(self) -> None:
        h = Harness(self)
        await h.start(**WEBHOOKS)
        code, body = await h.post("/agg/dlr", {"id": "m1"})
        self.assertEqual(code, 400)
        self.assertEqual(
            body["errors"], ["item 0: needs an id (id) and a status (status)"]
        )

    async def test_correlated_round_trip(self) -> None:
        """Send, the aggregator answers with its id, its report finds our message;
        a report for an id we never sent is ignored."""
        h = Harness(self)
        transport = await h.start(
            **WEBHOOKS,
            response_id_field="id",
            dlr_list_field="results",
            dlr_fields={"id": "messageId", "status": "status.groupName"},
        )
        h.peer.answer(201, {"id": "agg-1"})
        msg = mt()
        await transport.handle_outbound(msg)
        code, _ = await h.post(
            "/agg/dlr",
            {
                "results": [
                    {"messageId": "agg-1", "status": {"groupName": "DELIVERED"}},
                    {"messageId": "agg-unknown", "status": {"groupName": "DELIVERED"}},
                ]
            },
        )
        self.assertEqual(code, 200)
        ack, report = h.rec.events
        self.assertEqual(ack["sent_message_id"], "agg-1")
        self.assertEqual(report["event_type"], "delivery_report")
        self.assertEqual(report["user_message_id"], msg["message_id"])
        self.assertEqual(report["delivery_status"], "delivered")


# ---------------------------------------------------------------------------
# through the API


class HttpChannelApiTests(TestCase):
    async def test_send_and_report_through_api(self) -> None:
        """A channel created over the API sends to the aggregator; the
        aggregator's MO reaches mo_url and its report reaches event_url."""
        peer = HttpPeer(reactor)
        peer_base = await peer.start()
        self.addCleanup(peer.stop)
        sink = HttpSink(reactor)
        sink_base = await sink.start()
        self.addCleanup(sink.stop)
        api = ApiDriver(reactor)
        self.addCleanup(api.stop)
        await api.start()
        port = free_port()
        code, body, _ = await api.request(
            "POST",
            "/channels/",
            {
                "type": "http",
                "mo_url": sink_base + "/mo",
                "config": {
                    "send_url": peer_base + "/send",
                    "auth": {"type": "token", "token": "s3"},
                    "response_id_field": "id",
                    "web_path": "/sms/acme",
                    "web_port": port,
                    "web_interface": "127.0.0.1",
                },
            },
        )
        self.assertEqual(code, 201, body)
        cid = body["result"]["id"]
        peer.answer(200, {"id": "acme-9"})
        code, body, _ = await api.request(
            "POST",
            f"/channels/{cid}/messages/",
            {
                "to": "+27821",
                "from": "100",
                "content": "hi",
                "event_url": sink_base + "/events",
            },
        )
        self.assertEqual(code, 201, body)
        message_id = body["result"]["message_id"]
        sent = await peer.next()
        self.assertEqual(sent.headers["authorization"], "Bearer s3")
        self.assertEqual(sent.json()["content"], "hi")
        submitted = await sink.next()
        self.assertEqual(
            (submitted.path, submitted.body["event_type"]), ("/events", "submitted")
        )

        h = Harness(self)
        h.transport = api.junebug.channels.running(cid).transport  # type: ignore[union-attr,assignment]
        code, _ = await h.post("/sms/acme/dlr", {"id": "acme-9", "status": "DELIVRD"})
        self.assertEqual(code, 200)
        report = await sink.next()
        self.assertEqual(report.body["event_type"], "delivery_succeeded")
        self.assertEqual(report.body["message_id"], message_id)

        code, _ = await h.post(
            "/sms/acme/inbound", {"from": "+27821", "to": "100", "content": "reply"}
        )
        self.assertEqual(code, 200)
        mo = await sink.next()
        self.assertEqual(mo.path, "/mo")
        self.assertEqual((mo.body["from"], mo.body["content"]), ("+27821", "reply"))
        self.assertEqual(mo.body["channel_id"], cid)

        code, body, _ = await api.request(
            "GET", f"/channels/{cid}/messages/{message_id}"
        )
        self.assertEqual(body["result"]["last_event_type"], "delivery_succeeded")
