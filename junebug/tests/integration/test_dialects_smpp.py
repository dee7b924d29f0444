"""RapidPro's KN and JS channels, and Kannel and Jasmin clients, against
Junebug's dialects over a real SMPP channel and SMSC peer (node-smpp).

The requests are those courier's handlers make (``handlers/kannel`` and
``handlers/jasmin`` of nyaruka/courier, their test data): the sends (GSM and
Unicode text, priority, national numbers, extra send-URL parameters), the
delivery reports at courier's status URL with the statuses it maps, the MO
at its receive URL with the fields it requires.  The peer sends one MO after
the bind, then acks and delivers every message.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from junebug.testing.api import json_request
from junebug.testing.polling import wait_until
from junebug.tests.support.dialects import (
    JASMIN_USER,
    KANNEL_USER,
    Dialects,
    start_dialects,
)

UUID = "8eb23e93-5ecb-45ba-b726-3b064e0c56ab"
MSG_UUID = "0191e180-7d60-7000-aded-7d8b151cbd5b"
#: courier's KN receive URL (as RapidPro tells Kannel's sms-service).
KN_RECEIVE = f"/c/kn/{UUID}/receive?backend=%i&sender=%p&message=%b&ts=%T&id=%I&to=%P"
#: What courier's KN and JS statusMapping make of each status.
KN_STATUS = {1: "delivered", 2: "errored", 4: "sent", 8: "sent", 16: "errored"}
JS_STATUS = {"DELIVRD": "delivered", "ACCEPTD": "sent", "UNDELIV": "failed"}


def query(received: Any) -> dict[str, list[str]]:
    return parse_qs(urlsplit(received.uri).query, keep_blank_values=True)


def form(received: Any) -> dict[str, list[str]]:
    return parse_qs(str(received.body), keep_blank_values=True)


async def submits(d: Dialects, count: int) -> list[dict[str, Any]]:
    assert d.peer is not None
    peer = d.peer
    await wait_until(lambda: len(peer.submits) >= count, timeout=20)
    return peer.submits


class CourierKannelTests(TestCase):
    """courier's KN handler (Send, receiveMessage, receiveStatus)."""

    def kn_form(self, d: Dialects, text: Any, **extra: str) -> dict[str, Any]:
        status = f"{d.base}/c/kn/{UUID}/status?uuid={MSG_UUID}&status=%d"
        return {
            "username": KANNEL_USER["username"],
            "password": KANNEL_USER["password"],
            "from": "2020",
            "text": text,
            "to": "+250788383383",
            "dlr-url": status,
            "dlr-mask": "27",
            **extra,
        }

    async def test_receive_send_and_statuses(self) -> None:
        """The MO at courier's receive URL (POST, as its route is, with the
        required id, ts and sender); a plain send accepted and submitted;
        its reports at the status URL: 8 (sent) then 1 (delivered)."""
        d = await start_dialects(
            self, reactor, mo_path=KN_RECEIVE, mo_format="kannel-post", peer_kind="node"
        )
        mo = await d.sink.next(timeout=20)
        self.assertEqual((mo.method, mo.path), ("POST", f"/c/kn/{UUID}/receive"))
        fields = query(mo)
        self.assertEqual(fields["sender"], ["27820001111"])
        self.assertEqual(fields["to"], ["1234"])
        self.assertEqual(fields["message"], ["hello MO from node-smpp"])
        self.assertEqual(fields["backend"], ["chan"])
        self.assertTrue(fields["id"][0])
        self.assertTrue(int(fields["ts"][0]) > 1_600_000_000)

        code, body, _ = await d.get(
            "/cgi-bin/sendsms", self.kn_form(d, "Simple Message")
        )
        self.assertEqual((code, body), (202, b"0: Accepted for delivery"))
        [submit] = await submits(d, 1)
        self.assertEqual(submit["message"], "Simple Message")
        self.assertEqual(submit["destination_addr"], "+250788383383")
        self.assertEqual(submit["source_addr"], "2020")
        statuses = []
        for _ in range(2):
            report = await d.sink.next(timeout=20)
            self.assertEqual(
                (report.method, report.path), ("GET", f"/c/kn/{UUID}/status")
            )
            fields = query(report)
            self.assertEqual(fields["uuid"], [MSG_UUID])
            statuses.append(KN_STATUS[int(fields["status"][0])])
        self.assertEqual(statuses, ["sent", "delivered"])

    async def test_unicode_priority_national_custom(self) -> None:
        """Unicode (UTF-16BE text, coding 2, no charset), high priority (1),
        a national number with dlr-mask 3, a send URL with its own auth=foo."""
        d = await start_dialects(self, reactor, peer_kind="node")
        await d.sink.next(timeout=20)  # the MO after the bind
        sends = [
            self.kn_form(d, "Hi \u263a".encode("utf-16-be"), coding="2"),
            self.kn_form(d, "\u263a".encode("utf-16-be"), coding="2"),
            self.kn_form(d, "My pic!\nhttps://foo.bar/image.jpg", priority="1"),
            {
                **self.kn_form(d, "success", priority="1"),
                "to": "788383383",
                "dlr-mask": "3",
            },
            self.kn_form(d, "Custom Params", priority="1", auth="foo"),
        ]
        for params in sends:
            code, body, _ = await d.get("/cgi-bin/sendsms", params)
            self.assertEqual(code, 202, body)
        got = await submits(d, 5)
        self.assertEqual(
            [s["message"] for s in got],
            [
                "Hi \u263a",
                "\u263a",
                "My pic!\nhttps://foo.bar/image.jpg",
                "success",
                "Custom Params",
            ],
        )
        self.assertEqual([s["data_coding"] for s in got[:2]], [8, 8])
        self.assertEqual(got[3]["destination_addr"], "788383383")
        # dlr-mask 3 (delivered, failed): the national send reports only
        # its delivery; the others their ack (8) and delivery (1).
        seen: list[int] = []
        for _ in range(9):
            seen.append(int(query(await d.sink.next(timeout=20))["status"][0]))
        self.assertEqual(sorted(seen), [1] * 5 + [8] * 4)


class CourierJasminTests(TestCase):
    """courier's JS handler (Send, receiveMessage, receiveStatus)."""

    def js_form(self, d: Dialects, **content: str) -> dict[str, str]:
        return {
            **content,
            "to": "250788383383",
            "from": "2020",
            "dlr": "yes",
            "dlr-url": f"{d.base}/c/js/{UUID}/status",
            "dlr-level": "2",
            "dlr-method": "POST",
            "username": JASMIN_USER["username"],
            "password": JASMIN_USER["password"],
        }

    async def test_receive_send_and_status(self) -> None:
        """The MO as Jasmin's connector posts it (content, coding, from, to,
        id); GSM and Unicode sends answered Success "<id>"; the level-2
        report for each at the status URL, DELIVRD, with that id."""
        d = await start_dialects(
            self,
            reactor,
            mo_path=f"/c/js/{UUID}/receive/",
            mo_format="jasmin",
            peer_kind="node",
        )
        d.sink.response_body = b"ACK/Jasmin"
        mo = await d.sink.next(timeout=20)
        self.assertEqual((mo.method, mo.path), ("POST", f"/c/js/{UUID}/receive/"))
        fields = form(mo)
        for name in ("content", "coding", "from", "to", "id"):
            self.assertTrue(fields[name][0], name)
        self.assertEqual(fields["content"], ["hello MO from node-smpp"])
        self.assertEqual(fields["coding"], ["0"])

        ids = []
        for content in (
            {"content": "Simple Message", "coding": "0"},
            {"hex-content": "263a", "coding": "8"},
        ):
            code, body, _ = await d.get("/send", self.js_form(d, **content))
            self.assertEqual(code, 200, body)
            self.assertRegex(body.decode(), r'^Success "(.+)"$')
            ids.append(body.decode().split('"')[1])
        got = await submits(d, 2)
        self.assertEqual([s["message"] for s in got], ["Simple Message", "\u263a"])
        self.assertEqual(got[0]["destination_addr"], "250788383383")
        reports = {}
        for _ in range(2):
            report = await d.sink.next(timeout=20)
            self.assertEqual(
                (report.method, report.path), ("POST", f"/c/js/{UUID}/status")
            )
            fields = form(report)
            reports[fields["id"][0]] = JS_STATUS[fields["message_status"][0]]
        self.assertEqual(reports, {ids[0]: "delivered", ids[1]: "delivered"})


class ClientFlowTests(TestCase):
    async def test_kannel_client(self) -> None:
        """A Kannel client: sms-service get-url MO; sendsms with a dlr-url of
        several escapes (%d %I %p %P %A %T %i); mask 31 reports all."""
        d = await start_dialects(
            self,
            reactor,
            mo_path="/sms?from=%p&to=%P&text=%a&kw=%k&smsc=%i",
            mo_format="kannel-get",
            peer_kind="node",
        )
        mo = query(await d.sink.next(timeout=20))
        self.assertEqual(mo["from"], ["27820001111"])
        self.assertEqual(mo["text"], ["hello MO from node-smpp"])
        self.assertEqual(mo["kw"], ["hello"])
        dlr = d.base + "/dlr/%d?id=%I&from=%p&to=%P&answer=%A&at=%T&smsc=%i"
        code, body, _ = await d.get(
            "/cgi-bin/sendsms",
            {
                **KANNEL_USER,
                "to": "27821112222",
                "from": "3030",
                "text": "hi",
                "dlr-mask": "31",
                "dlr-url": dlr,
            },
        )
        self.assertEqual(code, 202, body)
        reports = {}
        for _ in range(2):
            got = await d.sink.next(timeout=20)
            reports[got.path] = query(got)
        self.assertEqual(set(reports), {"/dlr/8", "/dlr/1"})
        for fields in reports.values():
            self.assertEqual(fields["from"], ["3030"])
            self.assertEqual(fields["to"], ["27821112222"])
            self.assertEqual(fields["smsc"], ["chan"])
            self.assertTrue(fields["at"][0].isdigit())
        self.assertEqual(reports["/dlr/8"]["id"], reports["/dlr/1"]["id"])
        self.assertIn(reports["/dlr/1"]["answer"][0], ("DELIVRD", "DELIVERED"))

    async def test_jasmin_client(self) -> None:
        """A Jasmin client: /send with dlr-level 3 (level 1 ESME_ROK, then
        level 2 DELIVRD with the SMSC's id); MO acknowledged ACK/Jasmin."""
        d = await start_dialects(
            self, reactor, mo_path="/mo", mo_format="jasmin", peer_kind="node"
        )
        d.sink.response_body = b"ACK/Jasmin"
        mo = form(await d.sink.next(timeout=20))
        self.assertEqual(mo["origin-connector"], ["chan"])
        code, body, _ = await d.get(
            "/send",
            {
                **JASMIN_USER,
                "to": "27821112222",
                "content": "hello",
                "dlr-url": d.base + "/dlr",
                "dlr-level": "3",
            },
        )
        self.assertEqual(code, 200, body)
        mid = body.decode().split('"')[1]
        levels = {}
        for _ in range(2):
            fields = form(await d.sink.next(timeout=20))
            self.assertEqual(fields["id"], [mid])
            levels[fields["level"][0]] = fields
        self.assertEqual(levels["1"]["message_status"], ["ESME_ROK"])
        self.assertEqual(levels["2"]["message_status"], ["DELIVRD"])
        self.assertTrue(levels["2"]["id_smsc"][0])


def courier_ex_body(template: str, variables: dict[str, str]) -> bytes:
    """courier's EX Send with content type json: each {{variable}} of the
    send body replaced by its JSON string."""
    body = template
    for name, value in variables.items():
        body = body.replace("{{" + name + "}}", json.dumps(value))
    return body.encode()


class RapidProExternalTests(TestCase):
    async def test_external_channel_on_the_junebug_api(self) -> None:
        """RapidPro's EX channel on Junebug's own API: the send URL is the
        channel's messages URL, POST, content type JSON, and this body; the
        MO comes through a templated mo_url at EX's receive URL with the
        from and text it reads."""
        d = await start_dialects(
            self,
            reactor,
            mo_path=f"/c/ex/{UUID}/receive?from=%p&text=%b",
            peer_kind="node",
        )
        mo = await d.sink.next(timeout=20)
        self.assertEqual((mo.method, mo.path), ("POST", f"/c/ex/{UUID}/receive"))
        self.assertEqual(query(mo)["from"], ["27820001111"])
        self.assertEqual(query(mo)["text"], ["hello MO from node-smpp"])
        template = '{"to": {{to}}, "from": {{from}}, "content": {{text}}}'
        body = courier_ex_body(
            template, {"to": "+250788383383", "from": "2020", "text": "Hi \u263a"}
        )
        code, answer, _ = await json_request(
            d.api.client,
            "POST",
            d.api.base + "/channels/chan/messages/",
            raw=body,
            headers={b"Content-Type": [b"application/json"]},
        )
        self.assertEqual(code, 201, answer)
        [submit] = await submits(d, 1)
        self.assertEqual(submit["message"], "Hi \u263a")
        self.assertEqual(submit["destination_addr"], "+250788383383")
