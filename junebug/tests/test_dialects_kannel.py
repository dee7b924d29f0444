"""Kannel's /cgi-bin/sendsms over a fake channel: answers, records, DLRs."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from twisted.internet import reactor
from twisted.logger import formatEvent, globalLogPublisher
from twisted.trial.unittest import TestCase

from junebug.amqp.memory import MemoryBroker
from junebug.messages import delivery_report
from junebug.testing.api import json_request
from junebug.testing.polling import wait_until
from junebug.tests.support.dialects import KANNEL_USER, start_dialects

SEND = "/cgi-bin/sendsms"


class KannelSendSmsTests(TestCase):
    async def test_accepts_and_sends(self) -> None:
        """202 and Kannel's text; the message reaches the channel with its
        text, numbers and priority (Kannel 1 is Junebug 3)."""
        d = await start_dialects(self, reactor)
        code, body, _ = await d.get(
            SEND,
            {
                **KANNEL_USER,
                "to": "+250788383383",
                "from": "2020",
                "text": "Hi",
                "priority": "1",
            },
        )
        self.assertEqual((code, body), (202, b"0: Accepted for delivery"))
        [sent] = d.transport().outbound
        self.assertEqual(sent["content"], "Hi")
        self.assertEqual(sent["to_addr"], "+250788383383")
        self.assertEqual(sent["from_addr"], "2020")
        assert d.api.junebug is not None
        record = await d.api.junebug.api.deps.sender.messages.load_outbound(
            "chan", sent["message_id"]
        )
        self.assertEqual(record["priority"], 3)
        self.assertEqual(record["dialect"], "kannel")

    async def test_ucs2_text_without_charset_is_utf16be(self) -> None:
        """coding=2 without charset: the text is UTF-16BE bytes (as RapidPro's
        KN channel sends it)."""
        d = await start_dialects(self, reactor)
        code, body, _ = await d.get(
            SEND,
            {
                **KANNEL_USER,
                "to": "1",
                "from": "2",
                "coding": "2",
                "text": "Hi \u263a".encode("utf-16-be"),
            },
        )
        self.assertEqual(code, 202, body)
        self.assertEqual(d.transport().outbound[0]["content"], "Hi \u263a")

    async def test_ucs2_with_utf8_charset(self) -> None:
        """coding=2&charset=utf8: the text is UTF-8 (RapidPro's courier KN
        handler sends Unicode so)."""
        d = await start_dialects(self, reactor)
        code, body, _ = await d.get(
            SEND,
            {
                **KANNEL_USER,
                "to": "1",
                "from": "2",
                "coding": "2",
                "charset": "utf8",
                "text": "Hi \u263a".encode(),
            },
        )
        self.assertEqual((code, body), (202, b"0: Accepted for delivery"))
        [sent] = d.transport().outbound
        self.assertEqual(sent["content"], "Hi \u263a")

    async def test_several_receivers(self) -> None:
        d = await start_dialects(self, reactor)
        code, _, _ = await d.get(
            SEND, {**KANNEL_USER, "to": "111 222 111", "from": "2", "text": "x"}
        )
        self.assertEqual(code, 202)
        self.assertEqual([m["to_addr"] for m in d.transport().outbound], ["111", "222"])

    async def test_refusals(self) -> None:
        """Each bad request gets Kannel's status and text, and sends nothing."""
        d = await start_dialects(self, reactor)
        ok = {**KANNEL_USER, "to": "1", "from": "2", "text": "x"}
        cases = [
            ({**ok, "password": "nope"}, 403, b"Authorization failed for sendsms"),
            ({"to": "1", "text": "x"}, 403, b"Authorization failed for sendsms"),
            (
                {"username": "juser", "password": "jpass", "to": "1"},
                403,
                b"Authorization failed for sendsms",
            ),
            (
                {k: v for k, v in ok.items() if k != "to"},
                400,
                b"Missing receiver number, rejected",
            ),
            ({**ok, "to": ""}, 400, b"Empty receiver number not allowed, rejected"),
            (
                {**ok, "to": "abc"},
                400,
                b"Number(s) has/have been denied by white- and/or black-lists.",
            ),
            ({**ok, "coding": "7"}, 400, b"Coding field misformed, rejected"),
            ({**ok, "coding": "x"}, 400, b"Coding field misformed, rejected"),
            ({**ok, "dlr-mask": "64"}, 400, b"DLR-Mask field misformed, rejected"),
            ({**ok, "dlr-url": "ftp://x/"}, 400, b"DLR-URL field misformed, rejected"),
            ({**ok, "priority": "4"}, 400, b"Priority field misformed, rejected"),
            ({**ok, "mclass": "9"}, 400, b"MClass field misformed, rejected"),
            ({**ok, "text": b"\xff\xfe"}, 400, b"Charset or body misformed, rejected"),
            (
                {**ok, "charset": "nonsense"},
                400,
                b"Charset or body misformed, rejected",
            ),
            (
                {**ok, "coding": "2", "text": b"\x00"},
                400,
                b"Charset or body misformed, rejected",
            ),
        ]
        for params, status, text in cases:
            code, body, _ = await d.get(SEND, params)
            self.assertEqual((code, body), (status, text), params)
        self.assertEqual(d.transport().outbound, [])

    async def test_broker_away_is_a_temporal_failure(self) -> None:
        """With the broker away: Kannel's 503, nothing sent; once it is back
        the same request is accepted."""
        d = await start_dialects(self, reactor)
        assert d.api.junebug is not None
        broker = d.api.junebug.broker
        assert isinstance(broker, MemoryBroker)
        params = {**KANNEL_USER, "to": "1", "from": "2", "text": "later"}
        broker.disconnect()
        code, body, headers = await d.get(SEND, params)
        self.assertEqual((code, body), (503, b"Temporal failure, try again later."))
        self.assertEqual(headers.getRawHeaders(b"content-type")[0][:9], b"text/html")
        broker.reconnect()
        await broker.flush(timeout=10)
        self.assertEqual(d.transport().outbound, [])
        code, body, _ = await d.get(SEND, params)
        self.assertEqual((code, body), (202, b"0: Accepted for delivery"))
        await broker.flush(timeout=10)
        self.assertEqual([m["content"] for m in d.transport().outbound], ["later"])

    async def test_oversize_is_refused_in_kannel_words(self) -> None:
        """A message over the channel's character_limit: 400, not sent."""
        d = await start_dialects(self, reactor)
        await d.api.request("POST", "/channels/chan", {"character_limit": 5})
        code, body, _ = await d.get(
            SEND, {**KANNEL_USER, "to": "1", "text": "too long for it"}
        )
        self.assertEqual(code, 400)
        self.assertTrue(body.endswith(b", rejected"), body)
        self.assertIn(b"character limit", body)

    async def test_unknown_channel_is_not_routable(self) -> None:
        d = await start_dialects(
            self,
            reactor,
            send_users=[{**KANNEL_USER, "channel_id": "gone"}],
        )
        code, body, _ = await d.get(SEND, {**KANNEL_USER, "to": "1", "text": "x"})
        self.assertEqual((code, body), (403, b"Not routable. Do not try again."))

    async def test_post_form_and_text_plain(self) -> None:
        """A form POST, and a text/plain POST with X-Kannel headers."""
        d = await start_dialects(self, reactor)
        code, body, _ = await d.post(
            SEND,
            b"username=kuser&password=kpass&to=1&text=form",
            b"application/x-www-form-urlencoded",
        )
        self.assertEqual(code, 202, body)
        code, body, _ = await d.post(
            SEND,
            "plain \u263a".encode(),
            b"text/plain; charset=utf-8",
            X_Kannel_Username=b"kuser",
            X_Kannel_Password=b"kpass",
            X_Kannel_To=b"2",
        )
        self.assertEqual(code, 202, body)
        code, body, _ = await d.post(SEND, b"<x/>", b"image/png")
        self.assertEqual((code, body), (400, b"Invalid content-type"))
        texts = [m["content"] for m in d.transport().outbound]
        self.assertEqual(texts, ["form", "plain \u263a"])

    async def test_form_of_any_bytes(self) -> None:
        """A form whose names and values are not ASCII (found by the fuzz
        test) is read as bytes: refused in Kannel's words, not a 500."""
        d = await start_dialects(self, reactor)
        code, body, _ = await d.post(
            SEND,
            b"Q%F3%A4%91%8C=n&%C2%B6=%FF&=&r",
            b"application/x-www-form-urlencoded",
        )
        self.assertEqual((code, body), (403, b"Authorization failed for sendsms"))

    async def test_api_credentials_do_not_guard_sendsms(self) -> None:
        """With API auth on, sendsms still answers its own users."""
        d = await start_dialects(self, reactor, api_token="secret-token")
        code, body, _ = await d.get(SEND, {**KANNEL_USER, "to": "1", "text": "x"})
        self.assertEqual(code, 202, body)
        code, _, _ = await d.api.request("GET", "/channels/")
        self.assertEqual(code, 401)

    async def test_access_log_hides_the_password(self) -> None:
        seen: list[str] = []

        def observe(event: Any) -> None:
            seen.append(formatEvent(event) or "")

        globalLogPublisher.addObserver(observe)
        self.addCleanup(globalLogPublisher.removeObserver, observe)
        d = await start_dialects(self, reactor)
        await d.get(SEND, {**KANNEL_USER, "to": "1", "text": "x"})
        lines = [line for line in seen if "/cgi-bin/sendsms" in line]
        self.assertTrue(lines)
        self.assertFalse([line for line in lines if KANNEL_USER["password"] in line])
        self.assertIn("password=***", lines[0])


class KannelDlrTests(TestCase):
    async def test_dlr_mask_filters_and_escapes_fill(self) -> None:
        """Mask 27 (1+2+8+16): the ack (8) and delivered (1) reports come as
        GETs with %d, %I, %p, %P filled; pending (4) is masked out."""
        d = await start_dialects(self, reactor)
        dlr = d.base + "/dlr?status=%d&id=%I&from=%p&to=%P&smsc=%i"
        code, _, _ = await d.get(
            SEND,
            {
                **KANNEL_USER,
                "to": "+271",
                "from": "2020",
                "text": "x",
                "dlr-mask": "27",
                "dlr-url": dlr,
            },
        )
        self.assertEqual(code, 202)
        [sent] = d.transport().outbound
        mid = sent["message_id"]
        ack = await d.sink.next()
        self.assertEqual(ack.method, "GET")
        self.assertEqual(ack.path, "/dlr")
        query = parse_qs(urlsplit(ack.uri).query)
        self.assertEqual(query["status"], ["8"])
        self.assertEqual(query["id"], [mid])
        self.assertEqual(query["from"], ["2020"])
        self.assertEqual(query["to"], ["+271"])
        self.assertEqual(query["smsc"], ["chan"])
        publish = d.transport().context.publish_event
        await publish(delivery_report(mid, "pending", "chan"))
        await publish(delivery_report(mid, "failed", "chan"))
        failed = await d.sink.next()
        self.assertEqual(parse_qs(urlsplit(failed.uri).query)["status"], ["2"])
        await publish(delivery_report(mid, "delivered", "chan"))
        delivered = await d.sink.next()
        self.assertEqual(parse_qs(urlsplit(delivered.uri).query)["status"], ["1"])

    async def test_nack_is_16(self) -> None:
        d = await start_dialects(self, reactor)
        await d.api.request(
            "POST", "/channels/chan", {"config": {"nack_reason": "ESME_RINVDSTADR"}}
        )
        code, _, _ = await d.get(
            SEND,
            {
                **KANNEL_USER,
                "to": "1",
                "text": "x",
                "dlr-mask": "16",
                "dlr-url": d.base + "/dlr?s=%d&why=%A",
            },
        )
        self.assertEqual(code, 202)
        nack = await d.sink.next()
        query = parse_qs(urlsplit(nack.uri).query)
        self.assertEqual(query["s"], ["16"])
        self.assertEqual(query["why"], ["ESME_RINVDSTADR"])

    async def test_failed_dlr_is_retried_until_delivered(self) -> None:
        """A 500 from the dlr-url: the same GET again from the retry queue;
        answered 200, it is delivered and not retried again."""
        seen: list[str] = []

        def observe(event: Any) -> None:
            seen.append(formatEvent(event) or "")

        globalLogPublisher.addObserver(observe)
        self.addCleanup(globalLogPublisher.removeObserver, observe)
        d = await start_dialects(self, reactor)
        assert d.api.junebug is not None
        metrics = d.api.junebug.metrics
        d.sink.response_code = 500
        code, _, _ = await d.get(
            SEND,
            {
                **KANNEL_USER,
                "to": "1",
                "text": "x",
                "dlr-mask": "8",
                "dlr-url": d.base + "/dlr?s=%d&id=%I",
            },
        )
        self.assertEqual(code, 202)
        first = await d.sink.next()
        # Answered 500 and scheduled for a retry: the retry may now succeed.
        await wait_until(lambda: metrics.callback_retries._value.get() >= 1)
        d.sink.response_code = 200
        again = await d.sink.next(timeout=20)
        self.assertEqual((again.method, again.uri), ("GET", first.uri))
        self.assertEqual(parse_qs(urlsplit(again.uri).query)["s"], ["8"])
        delivered = f"Delivered to {d.base}/dlr?s=8&id="
        await wait_until(lambda: [line for line in seen if delivered in line])
        self.assertEqual(metrics.callback_retries._value.get(), 1)
        self.assertEqual(metrics.callback_dead_letters._value.get(), 0)

    async def test_no_mask_no_reports(self) -> None:
        """A dlr-url without dlr-mask asks for nothing (as in Kannel); the
        MO that follows is the sink's next request."""
        d = await start_dialects(self, reactor)
        await d.get(
            SEND, {**KANNEL_USER, "to": "1", "text": "x", "dlr-url": d.base + "/d"}
        )
        await d.transport().receive("after")
        received = await d.sink.next()
        self.assertEqual(received.path, "/mo")


class KannelMoTests(TestCase):
    async def test_get_url(self) -> None:
        """mo_format kannel-get: a GET of the filled mo_url (RapidPro's KN
        receive URL), no body."""
        d = await start_dialects(
            self,
            reactor,
            mo_path="/receive?backend=%i&sender=%p&message=%b&ts=%T&id=%I&to=%P",
            mo_format="kannel-get",
        )
        msg = await d.transport().receive(
            "Join \u263a", from_addr="+2349067554729", to_addr="24453"
        )
        got = await d.sink.next()
        self.assertEqual((got.method, got.path), ("GET", "/receive"))
        query = parse_qs(urlsplit(got.uri).query)
        self.assertEqual(query["backend"], ["chan"])
        self.assertEqual(query["sender"], ["+2349067554729"])
        self.assertEqual(query["message"], ["Join \u263a"])
        self.assertEqual(query["id"], [msg["message_id"]])
        self.assertEqual(query["to"], ["24453"])
        self.assertTrue(query["ts"][0].isdigit())

    async def test_post_url(self) -> None:
        """mo_format kannel-post: the text as a text/plain body, with the
        X-Kannel headers."""
        d = await start_dialects(
            self, reactor, mo_path="/in?from=%p", mo_format="kannel-post"
        )
        await d.transport().receive("hello", from_addr="+271", to_addr="123")
        got = await d.sink.next()
        self.assertEqual((got.method, got.uri), ("POST", "/in?from=%2B271"))
        self.assertEqual(got.body, "hello")
        self.assertEqual(got.headers["content-type"], "text/plain; charset=utf-8")
        self.assertEqual(got.headers["x-kannel-from"], "+271")
        self.assertEqual(got.headers["x-kannel-to"], "123")
        self.assertEqual(got.headers["x-kannel-smsc"], "chan")

    async def test_failed_mo_is_retried(self) -> None:
        """A 500 from the get-url: the same GET again, from the retry queue
        (answered 500 too: the sink answers before the test could change it)."""
        d = await start_dialects(
            self, reactor, mo_path="/r?m=%b", mo_format="kannel-get"
        )
        d.sink.response_code = 500
        await d.transport().receive("again")
        first = await d.sink.next()
        second = await d.sink.next(timeout=20)
        self.assertEqual((second.method, second.uri), ("GET", first.uri))


class DialectPortTests(TestCase):
    async def test_own_port_serves_only_the_dialects(self) -> None:
        """dialect_port: sendsms and /send answer there, without the API's
        credentials; the management API is not there."""
        d = await start_dialects(self, reactor, dialect_port=0, api_token="tok")
        junebug = d.api.junebug
        assert junebug is not None and junebug.dialect_listener is not None
        base = f"http://127.0.0.1:{junebug.dialect_listener.getHost().port}"  # type: ignore[attr-defined]
        query = urlencode({**KANNEL_USER, "to": "1", "text": "own port"})
        code, body, _ = await json_request(
            d.api.client, "GET", f"{base}/cgi-bin/sendsms?{query}"
        )
        self.assertEqual((code, body), (202, b"0: Accepted for delivery"))
        code, _, _ = await json_request(d.api.client, "GET", f"{base}/channels/")
        self.assertEqual(code, 404)
        self.assertEqual(d.transport().outbound[-1]["content"], "own port")
