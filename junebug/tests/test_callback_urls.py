"""Callback URLs (``mo_url``, ``status_url``, ``event_url``) must be http(s) (#12.9).

Anything else is a 400 in the Junebug envelope, and nothing is stored.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from junebug.errors import ApiUsageError
from junebug.http.urls import check_callback_urls, http_url_problem
from junebug.testing.api import ApiDriver

BAD_URLS = ("file:///etc/passwd", "gopher://127.0.0.1:6379/_FLUSHALL", "http:///x")


def usage_error(body: dict[str, Any]) -> str:
    errors = body["result"]["errors"]
    assert errors[0]["type"] == "ApiUsageError", body
    message: str = errors[0]["message"]
    return message


class HttpUrlTests(TestCase):
    def test_only_http_and_https_with_a_host(self) -> None:
        for url in ("http://h/x", "HTTPS://u:p@h:8443/x?y=1"):
            self.assertIsNone(http_url_problem(url), url)
        for url in (*BAD_URLS, "mailto:a@b", "http://h:99999/", "relative/path"):
            self.assertIsNotNone(http_url_problem(url), url)

    def test_unset_values_are_no_url_and_passwords_stay_hidden(self) -> None:
        check_callback_urls(
            {"mo_url": None, "status_url": ""}, ("mo_url", "status_url")
        )
        with self.assertRaises(ApiUsageError) as caught:
            check_callback_urls({"mo_url": "ftp://u:pw@h/"}, ("mo_url",))
        self.assertIn("ftp://u:***@h/", str(caught.exception))
        self.assertNotIn("pw", str(caught.exception))


class CallbackUrlApiTests(TestCase):
    async def start(self) -> ApiDriver:
        api = ApiDriver(reactor)
        self.addCleanup(api.stop)
        await api.start()
        return api

    async def test_channel_urls_must_be_http(self) -> None:
        """Creating or editing a channel with a non-http(s) mo_url or
        status_url is a 400 and stores nothing."""
        api = await self.start()
        for key in ("mo_url", "status_url"):
            for url in BAD_URLS:
                props = {"type": "fake", "config": {}, "amqp_queue": "q", key: url}
                code, body, _ = await api.request("POST", "/channels/", props)
                self.assertEqual(code, 400, (key, url))
                self.assertIn(f'"{key}"', usage_error(body))
        _, listed, _ = await api.request("GET", "/channels/")
        self.assertEqual(listed["result"], [])
        good = {"type": "fake", "config": {}, "mo_url": "http://127.0.0.1:1/mo"}
        _, created, _ = await api.request("POST", "/channels/", good)
        cid = created["result"]["id"]
        code, body, _ = await api.request(
            "POST", f"/channels/{cid}", {"status_url": "file:///etc/passwd"}
        )
        self.assertEqual(code, 400)
        self.assertIn('"status_url"', usage_error(body))
        _, shown, _ = await api.request("GET", f"/channels/{cid}")
        self.assertNotIn("status_url", shown["result"])

    async def test_message_event_url_must_be_http(self) -> None:
        """An MT message with a non-http(s) event_url is refused (400) and
        neither stored nor sent."""
        api = await self.start()
        props = {"type": "fake", "config": {}, "mo_url": "http://127.0.0.1:1/mo"}
        _, created, _ = await api.request("POST", "/channels/", props)
        cid = created["result"]["id"]
        for url in BAD_URLS:
            code, body, _ = await api.request(
                "POST",
                f"/channels/{cid}/messages/",
                {"to": "+27820000000", "content": "hi", "event_url": url},
            )
            self.assertEqual(code, 400, url)
            self.assertIn('"event_url"', usage_error(body))
        assert api.junebug is not None
        self.assertEqual(api.junebug.broker.queue_messages(f"{cid}.outbound"), [])  # type: ignore[attr-defined]

    async def test_destination_mo_url_must_be_http(self) -> None:
        """Router destinations: a non-http(s) mo_url is refused on create,
        replace and patch, and the stored destination is unchanged."""
        api = await self.start()
        _, channel, _ = await api.request(
            "POST", "/channels/", {"type": "fake", "config": {}}
        )
        cid = channel["result"]["id"]
        _, router, _ = await api.request(
            "POST", "/routers/", {"type": "from_address", "config": {"channel": cid}}
        )
        rid = router["result"]["id"]
        base = f"/routers/{rid}/destinations/"
        code, body, _ = await api.request(
            "POST",
            base,
            {"config": {"regular_expression": "^1"}, "mo_url": BAD_URLS[0]},
        )
        self.assertEqual(code, 400)
        self.assertIn('"mo_url"', usage_error(body))
        _, listed, _ = await api.request("GET", base)
        self.assertEqual(listed["result"], [])
        good = {
            "config": {"regular_expression": "^1"},
            "mo_url": "http://127.0.0.1:1/mo",
        }
        _, created, _ = await api.request("POST", base, good)
        did = created["result"]["id"]
        for method, props in (
            ("PATCH", {"mo_url": BAD_URLS[1]}),
            ("PUT", {**good, "mo_url": BAD_URLS[1]}),
        ):
            code, body, _ = await api.request(method, base + did, props)
            self.assertEqual(code, 400, method)
            self.assertIn('"mo_url"', usage_error(body))
        _, shown, _ = await api.request("GET", base + did)
        self.assertEqual(shown["result"]["mo_url"], "http://127.0.0.1:1/mo")
        code, body, _ = await api.request(
            "POST",
            base + did + "/messages/",
            {"to": "+27820000000", "content": "hi", "event_url": BAD_URLS[1]},
        )
        self.assertEqual(code, 400)
        self.assertIn('"event_url"', usage_error(body))
