"""API authentication (optional) and secrets kept out of responses."""

from __future__ import annotations

import base64
from typing import Any

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from junebug.testing.api import ApiDriver
from junebug.testing.transports import FakeTransport


class SecurityTests(TestCase):
    async def start(self, **overrides: Any) -> ApiDriver:
        driver = ApiDriver(reactor)
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
        self.assertEqual(FakeTransport.instances[-1].config.number, 2)
