"""``GET``/``HEAD /health``: vumi2's worker health check, with the AMQP state."""

from __future__ import annotations

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from junebug.tests.message_api.driver import MessageApiDriver

UP = {"health": "ok", "components": {"amqp": {"health": "ok", "state": "open"}}}
DOWN = {
    "health": "down",
    "components": {"amqp": {"health": "down", "state": "closed"}},
}


class HealthTests(TestCase):
    async def driver(self, **options: object) -> MessageApiDriver:
        driver = MessageApiDriver(reactor)
        self.addCleanup(driver.stop)
        await driver.start(**options)
        return driver

    async def test_healthy(self) -> None:
        """200 with vumi2's body while connected; no credentials needed."""
        driver = await self.driver(auth={"username": "u", "password": "p"})
        code, body, headers = await driver.request("GET", "/health")
        self.assertEqual((code, body), (200, UP))
        self.assertEqual(headers.getRawHeaders(b"content-type"), [b"application/json"])
        code, body, _ = await driver.request("HEAD", "/health")
        self.assertEqual((code, body), (200, b""))

    async def test_broker_down(self) -> None:
        """Not connected to RabbitMQ: 500 (vumi2's code), state ``closed``."""
        driver = await self.driver()
        driver.broker.disconnect()
        self.addCleanup(driver.broker.reconnect)
        code, body, _ = await driver.request("GET", "/health")
        self.assertEqual((code, body), (500, DOWN))
        code, _, _ = await driver.request("HEAD", "/health")
        self.assertEqual(code, 500)

    async def test_health_under_base_url_path(self) -> None:
        """``/health`` is at the root whatever ``base_url_path`` is."""
        driver = await self.driver(base_url_path="/channels/<channel_id>")
        code, body, _ = await driver.request("GET", "/health")
        self.assertEqual((code, body), (200, UP))
