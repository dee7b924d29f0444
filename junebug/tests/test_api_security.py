"""API authentication (optional) and secrets kept out of responses."""

from __future__ import annotations

import base64
import hmac
from typing import Any

from twisted.trial.unittest import SynchronousTestCase, TestCase

from junebug.api import auth
from junebug.config import JunebugConfig
from junebug.testing.stub_api import StubApi


class SecurityTests(TestCase):
    """Driven through StubTreq on a fake clock."""

    async def start(self, **overrides: Any) -> StubApi:
        driver = StubApi()
        self.addCleanup(driver.stop)
        await driver.start(**overrides)
        return driver

    async def test_no_auth_by_default(self) -> None:
        """Without configured credentials the API is open, as before."""
        api = await self.start()
        code, _, _ = await api.request("GET", "/channels/")
        self.assertEqual(code, 200)

    async def test_token_and_basic(self) -> None:
        """With credentials, requests need a Token or Basic header; /health is open."""
        api = await self.start(
            api_token="s3cret", api_username="ops", api_password="pw"
        )
        code, body, headers = await api.request("GET", "/channels/")
        self.assertEqual(code, 401)
        self.assertEqual(body["result"]["errors"][0]["type"], "Unauthorized")
        self.assertEqual(
            headers.getRawHeaders("www-authenticate"), ['Basic realm="junebug"']
        )
        code, _, _ = await api.request("GET", "/health")
        self.assertEqual(code, 200)
        for header, expected in [
            ("Token s3cret", 200),
            ("Token wrong", 401),
            ("Basic " + base64.b64encode(b"ops:pw").decode(), 200),
            ("Basic " + base64.b64encode(b"ops:nope").decode(), 401),
            ("Basic !!!", 401),
        ]:
            response = await api.client.get(
                api.base + "/channels/", headers={"Authorization": header}
            )
            await response.content()
            self.assertEqual(response.code, expected, header)

    async def test_secrets_redacted_and_kept_on_round_trip(self) -> None:
        """Passwords, tokens and URL passwords show as ***; sending *** back keeps them."""
        api = await self.start()
        props = {
            "type": "fake",
            "config": {"number": 1, "password": "smpp-pw", "nested": {"api_key": "k"}},
            "mo_url": "http://user:mopw@127.0.0.1:1/mo",
            "mo_url_auth_token": "tok",
        }
        code, created, _ = await api.request("POST", "/channels/", props)
        self.assertEqual(code, 201)
        result = created["result"]
        self.assertEqual(result["config"]["password"], "***")
        self.assertEqual(result["config"]["nested"]["api_key"], "***")
        self.assertEqual(result["mo_url"], "http://user:***@127.0.0.1:1/mo")
        self.assertEqual(result["mo_url_auth_token"], "***")
        cid = result["id"]
        code, shown, _ = await api.request("GET", f"/channels/{cid}?show_secrets=true")
        self.assertEqual(shown["result"]["config"]["password"], "smpp-pw")
        edited = {
            "config": {**result["config"], "number": 2},
            "mo_url": result["mo_url"],
        }
        code, _, _ = await api.request("POST", f"/channels/{cid}", edited)
        self.assertEqual(code, 200)
        _, shown, _ = await api.request("GET", f"/channels/{cid}?show_secrets=1")
        self.assertEqual(shown["result"]["config"]["password"], "smpp-pw")
        self.assertEqual(shown["result"]["config"]["nested"]["api_key"], "k")
        self.assertEqual(shown["result"]["config"]["number"], 2)
        self.assertEqual(shown["result"]["mo_url"], "http://user:mopw@127.0.0.1:1/mo")
        self.assertEqual(api.transport(cid).config.number, 2)

    async def test_http_channel_credentials_redacted(self) -> None:
        """An http channel's auth.value, header values and metadata passwords
        show as *** (#12.8); sending the answer back keeps the stored ones."""
        api = await self.start()
        props = {
            "type": "http",
            "config": {
                "send_url": "http://127.0.0.1:1/send",
                "headers": {"Authorization": "Bearer hdr-pw", "X-Extra": "x"},
                "auth": {"type": "header", "header": "X-Api-Key", "value": "key-pw"},
            },
            "metadata": {"passwd": "meta-pw", "owner": "ops"},
            "amqp_queue": "q",
        }
        code, created, _ = await api.request("POST", "/channels/", props)
        self.assertEqual(code, 201, created)
        result = created["result"]
        cid = result["id"]
        _, fetched, _ = await api.request("GET", f"/channels/{cid}")
        for shown in (result, fetched["result"]):
            self.assertEqual(shown["config"]["auth"]["value"], "***")
            self.assertEqual(shown["config"]["auth"]["header"], "X-Api-Key")
            self.assertEqual(
                shown["config"]["headers"], {"Authorization": "***", "X-Extra": "***"}
            )
            self.assertEqual(shown["metadata"], {"passwd": "***", "owner": "ops"})
            self.assertNotIn("-pw", repr(shown))
        code, _, _ = await api.request(
            "POST",
            f"/channels/{cid}",
            {"config": result["config"], "metadata": result["metadata"]},
        )
        self.assertEqual(code, 200)
        _, full, _ = await api.request("GET", f"/channels/{cid}?show_secrets=true")
        self.assertEqual(full["result"]["config"], props["config"])
        self.assertEqual(full["result"]["metadata"], props["metadata"])


class BasicAuthParserTests(SynchronousTestCase):
    """One HTTP Basic parser for the API and the message API."""

    def count_compares(self) -> list[tuple[bytes, bytes]]:
        calls: list[tuple[bytes, bytes]] = []
        real = hmac.compare_digest

        def counting(a: bytes, b: bytes) -> bool:
            calls.append((a, b))
            return real(a, b)

        self.patch(auth.hmac, "compare_digest", counting)
        return calls

    def test_api_runs_both_compares_when_the_user_is_wrong(self) -> None:
        """A wrong user name still costs the password compare (no timing hint)."""
        calls = self.count_compares()
        config = JunebugConfig(api_username="ops", api_password="pw")
        header = b"Basic " + base64.b64encode(b"intruder:pw")
        self.assertFalse(auth.authorised(header, config))
        self.assertEqual(len(calls), 2)

    def test_missing_or_malformed_header_still_compares_twice(self) -> None:
        for header in (None, b"Basic !!!", b"Basic " + base64.b64encode(b"nocolon")):
            calls = self.count_compares()
            self.assertFalse(auth.basic_matches(header, "ops", "pw"), header)
            self.assertEqual(len(calls), 2, header)

    def test_parser(self) -> None:
        encode = base64.b64encode
        self.assertEqual(
            auth.basic_credentials(b"basic " + encode(b"ops:p:w")), (b"ops", b"p:w")
        )
        self.assertIsNone(auth.basic_credentials(b"Token " + encode(b"ops:pw")))
        self.assertIsNone(auth.basic_credentials(b""))
        self.assertTrue(auth.basic_matches(b"Basic " + encode(b"ops:pw"), "ops", "pw"))

    def test_message_api_uses_the_same_parser(self) -> None:
        from junebug.message_api import app as message_api_app

        self.assertIs(message_api_app.basic_matches, auth.basic_matches)
