"""Jasmin's /send over a fake channel: answers, decoding, DLRs and MO."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from junebug.amqp.memory import MemoryBroker
from junebug.messages import delivery_report
from junebug.tests.support.dialects import JASMIN_USER, start_dialects


def form(received: object) -> dict[str, list[str]]:
    body = getattr(received, "body", None)
    text = body if isinstance(body, str) else json.dumps(body)
    return parse_qs(text, keep_blank_values=True)


class JasminSendTests(TestCase):
    async def test_success_names_the_message(self) -> None:
        d = await start_dialects(self, reactor)
        code, body, headers = await d.get(
            "/send",
            {
                **JASMIN_USER,
                "to": "250788383383",
                "from": "2020",
                "content": "Hi",
                "priority": "3",
            },
        )
        self.assertEqual(code, 200, body)
        [sent] = d.transport().outbound
        self.assertEqual(body, f'Success "{sent["message_id"]}"'.encode())
        self.assertEqual(headers.getRawHeaders(b"content-type")[0][:10], b"text/plain")
        self.assertEqual((sent["to_addr"], sent["content"]), ("250788383383", "Hi"))

    async def test_hex_content_decodings(self) -> None:
        """hex-content in coding 8 is UTF-16BE (RapidPro's JS: 263a is U+263A),
        in coding 0 GSM 03.38, in coding 3 Latin-1."""
        d = await start_dialects(self, reactor)
        for coding, hexed, text in [
            ("8", "263a", "\u263a"),
            ("8", "00480069002026", None),
            ("0", "05", "\u00e9"),
            ("3", "e9", "\u00e9"),
        ]:
            code, body, _ = await d.get(
                "/send",
                {**JASMIN_USER, "to": "1", "coding": coding, "hex-content": hexed},
            )
            if text is None:
                self.assertEqual(code, 400, body)
                continue
            self.assertEqual(code, 200, body)
            self.assertEqual(d.transport().outbound[-1]["content"], text)

    async def test_refusals(self) -> None:
        """Jasmin's checks in Jasmin's order and words; nothing is sent."""
        d = await start_dialects(self, reactor)
        ok = {**JASMIN_USER, "to": "1", "content": "x"}
        cases = [
            (
                {},
                400,
                'Error "Mandatory arguments not found, please refer to the '
                'HTTPAPI specifications."',
            ),
            ({**ok, "bogus": "1"}, 400, 'Error "Argument [bogus] is unknown."'),
            (
                {**ok, "to": "abc"},
                400,
                'Error "Argument [to] has an invalid value: [abc]."',
            ),
            (
                {k: v for k, v in ok.items() if k != "to"},
                400,
                'Error "Mandatory argument [to] is not found."',
            ),
            (
                {**ok, "priority": "4"},
                400,
                'Error "Argument [priority] has an invalid value: [4]."',
            ),
            (
                {**ok, "dlr-level": "5"},
                400,
                'Error "Argument [dlr-level] has an invalid value: [5]."',
            ),
            (
                {**JASMIN_USER, "to": "1"},
                400,
                'Error "content or hex-content not present."',
            ),
            (
                {**ok, "hex-content": "00"},
                400,
                'Error "content and hex-content cannot be used both in same request."',
            ),
            (
                {**JASMIN_USER, "to": "1", "hex-content": "zz", "coding": "8"},
                400,
                'Error "hex-content is not hexadecimal."',
            ),
            (
                {**ok, "coding": "4"},
                400,
                'Error "coding 4 is not supported: messages are text."',
            ),
            (
                {**ok, "password": "wrong"},
                403,
                'Error "Authentication failure for username:juser"',
            ),
            (
                {**ok, "username": "kuser", "password": "kpass"},
                403,
                'Error "Authentication failure for username:kuser"',
            ),
        ]
        for params, status, text in cases:
            code, body, _ = await d.get("/send", params)
            self.assertEqual((code, body.decode()), (status, text), params)
        self.assertEqual(d.transport().outbound, [])

    async def test_form_of_any_bytes(self) -> None:
        """Names and values that are not ASCII: Jasmin's refusal, no 500."""
        d = await start_dialects(self, reactor)
        code, body, _ = await d.post(
            "/send", b"%C2%B6=true&%C2%83%1C=J", b"application/x-www-form-urlencoded"
        )
        self.assertEqual(code, 400, body)
        self.assertTrue(body.startswith(b'Error "Argument ['), body)

    async def test_post_form_and_json(self) -> None:
        d = await start_dialects(self, reactor)
        code, body, _ = await d.post(
            "/send",
            b"username=juser&password=jpass&to=1&content=form",
            b"application/x-www-form-urlencoded",
        )
        self.assertEqual(code, 200, body)
        code, body, _ = await d.post(
            "/send",
            json.dumps({**JASMIN_USER, "to": "2", "content": "json"}).encode(),
            b"application/json",
        )
        self.assertEqual(code, 200, body)
        texts = [m["content"] for m in d.transport().outbound]
        self.assertEqual(texts, ["form", "json"])

    async def test_broker_away_is_a_submit_error(self) -> None:
        """With the broker away: Jasmin's 500 Error, nothing sent; once it is
        back the same request succeeds."""
        d = await start_dialects(self, reactor)
        assert d.api.junebug is not None
        broker = d.api.junebug.broker
        assert isinstance(broker, MemoryBroker)
        params = {**JASMIN_USER, "to": "1", "content": "later"}
        broker.disconnect()
        code, body, headers = await d.get("/send", params)
        self.assertEqual(
            (code, body),
            (500, b'Error "Cannot send submit_sm, the message broker is away"'),
        )
        self.assertEqual(headers.getRawHeaders(b"content-type")[0][:10], b"text/plain")
        broker.reconnect()
        await broker.flush(timeout=10)
        self.assertEqual(d.transport().outbound, [])
        code, body, _ = await d.get("/send", params)
        self.assertEqual(code, 200, body)
        await broker.flush(timeout=10)
        [sent] = d.transport().outbound
        self.assertEqual(body, f'Success "{sent["message_id"]}"'.encode())
        self.assertEqual(sent["content"], "later")

    async def test_oversize_and_no_route(self) -> None:
        d = await start_dialects(self, reactor)
        await d.api.request("POST", "/channels/chan", {"character_limit": 3})
        code, body, _ = await d.get(
            "/send", {**JASMIN_USER, "to": "1", "content": "long"}
        )
        self.assertEqual(code, 400)
        self.assertIn(b"character limit", body)
        await d.api.request("DELETE", "/channels/chan")
        code, body, _ = await d.get("/send", {**JASMIN_USER, "to": "1", "content": "x"})
        self.assertEqual((code, body), (412, b'Error "No route found"'))


class JasminDlrTests(TestCase):
    async def send(self, d: object, **dlr: str) -> str:
        code, body, _ = await d.get(  # type: ignore[attr-defined]
            "/send", {**JASMIN_USER, "to": "1", "content": "x", **dlr}
        )
        self.assertEqual(code, 200, body)
        return body.decode().split('"')[1]

    async def test_level_3_posts_both_levels(self) -> None:
        """dlr-level 3: the ack as level 1 ESME_ROK, the receipt as level 2
        DELIVRD, both POSTed as forms."""
        d = await start_dialects(self, reactor)
        d.sink.response_body = b"ACK/Jasmin"
        mid = await self.send(d, **{"dlr-url": d.base + "/dlr", "dlr-level": "3"})
        first = await d.sink.next()
        self.assertEqual((first.method, first.path), ("POST", "/dlr"))
        fields = form(first)
        self.assertEqual(fields["id"], [mid])
        self.assertEqual(fields["message_status"], ["ESME_ROK"])
        self.assertEqual(fields["level"], ["1"])
        await d.transport().context.publish_event(
            delivery_report(mid, "delivered", "chan")
        )
        second = form(await d.sink.next())
        self.assertEqual(second["message_status"], ["DELIVRD"])
        self.assertEqual(second["level"], ["2"])
        self.assertEqual(second["dlvrd"], ["001"])

    async def test_level_2_get_and_failed(self) -> None:
        """dlr-level 2 with GET: no level-1 report; failed is UNDELIV, err set."""
        d = await start_dialects(self, reactor)
        d.sink.response_body = b"ACK/Jasmin"
        mid = await self.send(
            d, **{"dlr-url": d.base + "/dlr?x=1", "dlr-level": "2", "dlr-method": "get"}
        )
        await d.transport().context.publish_event(
            delivery_report(mid, "failed", "chan")
        )
        got = await d.sink.next()
        self.assertEqual(got.method, "GET")
        query = parse_qs(urlsplit(got.uri).query)
        self.assertEqual(query["x"], ["1"])
        self.assertEqual(query["id"], [mid])
        self.assertEqual(query["message_status"], ["UNDELIV"])
        self.assertEqual(query["dlvrd"], ["000"])

    async def test_nack_at_level_1(self) -> None:
        """A nack at level 1: its ESME_ status as message_status."""
        d = await start_dialects(self, reactor)
        d.sink.response_body = b"ACK/Jasmin"
        await d.api.request(
            "POST", "/channels/chan", {"config": {"nack_reason": "ESME_RINVDSTADR"}}
        )
        mid = await self.send(d, **{"dlr-url": d.base + "/dlr", "dlr-level": "1"})
        fields = form(await d.sink.next())
        self.assertEqual(fields["id"], [mid])
        self.assertEqual(fields["message_status"], ["ESME_RINVDSTADR"])
        self.assertEqual(fields["level"], ["1"])

    async def test_without_ack_jasmin_the_dlr_is_retried(self) -> None:
        d = await start_dialects(self, reactor)
        mid = await self.send(d, **{"dlr-url": d.base + "/dlr", "dlr-level": "1"})
        first = form(await d.sink.next())
        again = form(await d.sink.next(timeout=20))
        self.assertEqual(first, again)
        self.assertEqual(again["id"], [mid])


class JasminMoTests(TestCase):
    async def test_http_connector_form(self) -> None:
        """mo_format jasmin: Jasmin's HTTP connector fields; GSM text as GSM
        03.38 bytes with coding 0, binary their hex."""
        d = await start_dialects(self, reactor, mo_format="jasmin")
        d.sink.response_body = b"ACK/Jasmin"
        msg = await d.transport().receive(
            "\u00e9v\u00e9nement", from_addr="2349067554729", to_addr="2349067554711"
        )
        got = await d.sink.next()
        self.assertEqual(
            got.headers["content-type"], "application/x-www-form-urlencoded"
        )
        raw = parse_qs(got.body.encode("latin-1") if isinstance(got.body, str) else b"")
        self.assertEqual(raw[b"content"], [b"\x05v\x05nement"])
        fields = form(got)
        self.assertEqual(fields["id"], [msg["message_id"]])
        self.assertEqual(fields["from"], ["2349067554729"])
        self.assertEqual(fields["to"], ["2349067554711"])
        self.assertEqual(fields["coding"], ["0"])
        self.assertEqual(fields["origin-connector"], ["chan"])
        self.assertEqual(fields["binary"], ["0576056e656d656e74"])

    async def test_unicode_is_ucs2(self) -> None:
        d = await start_dialects(self, reactor, mo_format="jasmin")
        d.sink.response_body = b"ACK/Jasmin"
        await d.transport().receive("\u263a")
        fields = form(await d.sink.next())
        self.assertEqual((fields["coding"], fields["binary"]), (["8"], ["263a"]))

    async def test_answer_other_than_ack_is_retried(self) -> None:
        d = await start_dialects(self, reactor, mo_format="jasmin")
        d.sink.response_body = b"OK"
        await d.transport().receive("hi")
        first = form(await d.sink.next())
        again = form(await d.sink.next(timeout=20))
        self.assertEqual(first["id"], again["id"])
