"""Templated mo_url and event_url through an in-process Junebug and an HTTP sink."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from junebug.testing.api import ApiDriver
from junebug.testing.http_sink import HttpSink, Received


def _query(received: Received) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(received.uri).query).items()}


class UrlTemplatesApiTests(TestCase):
    async def start(self) -> tuple[ApiDriver, HttpSink, str]:
        sink = HttpSink(reactor)
        base = await sink.start()
        self.addCleanup(sink.stop)
        api = ApiDriver(reactor)
        self.addCleanup(api.stop)
        await api.start()
        return api, sink, base

    async def channel(self, api: ApiDriver, **props: Any) -> str:
        code, body, _ = await api.request(
            "POST", "/channels/", {"type": "fake", "config": {}, **props}
        )
        self.assertEqual(code, 201, body)
        cid: str = body["result"]["id"]
        return cid

    def assertBadTemplate(self, code: int, body: Any, fragment: str) -> None:
        self.assertEqual(code, 400, body)
        self.assertEqual(
            (body["status"], body["code"], body["description"]),
            (400, "Bad Request", "api usage error"),
        )
        self.assertEqual(body["result"]["errors"][0]["type"], "ApiUsageError")
        self.assertIn(fragment, body["result"]["errors"][0]["message"])

    async def test_templated_mo_url(self) -> None:
        """An MO message is posted to its own URL: id, channel, numbers, text."""
        api, sink, base = await self.start()
        cid = await self.channel(
            api,
            mo_url=base + "/mo/%i?id=%I&from={from}&to=%P&text=%b&kw=%k&plain=a%20b",
        )
        inbound = await api.transport(cid).receive(
            "Join now & win", from_addr="+27 81", to_addr="1234"
        )
        received = await sink.next()
        self.assertEqual(received.path, f"/mo/{cid}")
        self.assertIn("&plain=a%20b", received.uri)
        self.assertIn("&text=Join%20now%20%26%20win&", received.uri)
        self.assertEqual(
            _query(received),
            {
                "id": inbound["message_id"],
                "from": "+27 81",
                "to": "1234",
                "text": "Join now & win",
                "kw": "Join",
                "plain": "a b",
            },
        )
        self.assertEqual(received.body["message_id"], inbound["message_id"])

    async def test_templated_event_url(self) -> None:
        """The ack reaches event_url with %d 8, its message id and the SMSC's id."""
        api, sink, base = await self.start()
        cid = await self.channel(api, amqp_queue="q")
        code, body, _ = await api.request(
            "POST",
            f"/channels/{cid}/messages/",
            {
                "to": "+1 2",
                "content": "x",
                "event_url": base
                + "/ev?d=%d&id=%I&ch={channel_id}&t={event_type}&smsc={smsc_id}&to=%P",
            },
        )
        self.assertEqual(code, 201, body)
        mid = body["result"]["message_id"]
        received = await sink.next()
        self.assertEqual(received.path, "/ev")
        self.assertEqual(
            _query(received),
            {
                "d": "8",
                "id": mid,
                "ch": cid,
                "t": "submitted",
                "smsc": mid,
                "to": "+1 2",
            },
        )
        self.assertEqual(received.body["event_type"], "submitted")

    async def test_plain_urls_unchanged(self) -> None:
        """URLs with percent-encoded octets and no variables are posted as written."""
        api, sink, base = await self.start()
        url = base + "/a%20b/%d9%Ab?x=%2F&y=100%"
        cid = await self.channel(api, mo_url=url)
        await api.transport(cid).receive("hi")
        received = await sink.next()
        self.assertEqual(received.uri, "/a%20b/%d9%Ab?x=%2F&y=100%")
        await api.request(
            "POST",
            f"/channels/{cid}/messages/",
            {"to": "+1", "content": "x", "event_url": url},
        )
        received = await sink.next()
        self.assertEqual(received.uri, "/a%20b/%d9%Ab?x=%2F&y=100%")

    async def test_bad_mo_url_creates_nothing(self) -> None:
        """A bad template in mo_url is a 400 and no channel is stored or started."""
        api, _sink, base = await self.start()
        for url, fragment in (
            (base + "/{nope}", "unknown variable {nope}"),
            (base + "/?d=%d&", "%d ({dlr_type}) has no value"),
            (base + "/?x=%x", "%x is not a URL template escape"),
            (base + "/?f=%F", "%F ({failure_code}) has no value"),
            (base + "/?c=%c", "%c is not supported"),
            (base + "/{to", "unbalanced brace"),
        ):
            code, body, _ = await api.request(
                "POST", "/channels/", {"type": "fake", "config": {}, "mo_url": url}
            )
            self.assertBadTemplate(code, body, fragment)
            self.assertIn('"mo_url"', body["result"]["errors"][0]["message"])
        _, listed, _ = await api.request("GET", "/channels/")
        self.assertEqual(listed["result"], [])
        assert api.junebug is not None
        self.assertEqual(api.junebug.channels.running_ids(), [])

    async def test_bad_mo_url_modifies_nothing(self) -> None:
        """A modify with a bad template is a 400; the channel keeps its URL."""
        api, _sink, base = await self.start()
        cid = await self.channel(api, mo_url=base + "/mo")
        code, body, _ = await api.request(
            "POST", f"/channels/{cid}", {"mo_url": base + "/{bad}", "label": "x"}
        )
        self.assertBadTemplate(code, body, "unknown variable {bad}")
        _, found, _ = await api.request("GET", f"/channels/{cid}")
        self.assertEqual(found["result"]["mo_url"], base + "/mo")
        self.assertNotIn("label", found["result"])

    async def test_bad_event_url_sends_nothing(self) -> None:
        """A bad event_url template is a 400; nothing is stored or sent."""
        api, _sink, base = await self.start()
        cid = await self.channel(api, amqp_queue="q")
        transport = api.transport(cid)
        for url, fragment in (
            (base + "/?b=%b", "%b ({content}) has no value"),
            (base + "/{content}", "unknown variable {content}"),
            (base + "/?n=%n", "%n is not supported"),
        ):
            code, body, _ = await api.request(
                "POST",
                f"/channels/{cid}/messages/",
                {"to": "+1", "content": "x", "event_url": url},
            )
            self.assertBadTemplate(code, body, fragment)
            self.assertIn('"event_url"', body["result"]["errors"][0]["message"])
        self.assertEqual(transport.outbound, [])
        _, rates, _ = await api.request("GET", f"/channels/{cid}")
        self.assertEqual(rates["result"]["status"]["outbound_message_rate"], 0)

    async def test_destination_mo_url_checked(self) -> None:
        """Router destinations' mo_url templates are checked too."""
        api, _sink, base = await self.start()
        cid = await self.channel(api)
        code, body, _ = await api.request(
            "POST", "/routers/", {"type": "from_address", "config": {"channel": cid}}
        )
        rid = body["result"]["id"]
        path = f"/routers/{rid}/destinations/"
        code, body, _ = await api.request(
            "POST",
            path,
            {"config": {"regular_expression": "^1"}, "mo_url": base + "/%c"},
        )
        self.assertBadTemplate(code, body, "%c is not supported")
        _, listed, _ = await api.request("GET", path)
        self.assertEqual(listed["result"], [])
        code, body, _ = await api.request(
            "POST",
            path,
            {"config": {"regular_expression": "^1"}, "mo_url": base + "/%p"},
        )
        self.assertEqual(code, 201, body)
        did = body["result"]["id"]
        code, body, _ = await api.request(
            "PATCH", path + did, {"mo_url": base + "/{oops}"}
        )
        self.assertBadTemplate(code, body, "unknown variable {oops}")
        _, found, _ = await api.request("GET", path + did)
        self.assertEqual(found["result"]["mo_url"], base + "/%p")
