"""``/metrics``: behind the API's auth, in the OpenAPI document, counting with
cached children; the per-Junebug registry; route labels never carry ids."""

from __future__ import annotations

import base64
from typing import Any

from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from twisted.internet import reactor
from twisted.trial.unittest import SynchronousTestCase, TestCase

from junebug.metrics.families import JunebugMetrics
from junebug.testing.api import ApiDriver


def families(text: str) -> dict[str, Any]:
    return {family.name: family for family in text_string_to_metric_families(text)}


class MetricsRouteTests(TestCase):
    async def start(self, **overrides: Any) -> ApiDriver:
        driver = ApiDriver(reactor)
        self.addCleanup(driver.stop)
        await driver.start(**overrides)
        return driver

    async def get(self, api: ApiDriver, path: str, **headers: str) -> tuple[int, str]:
        response = await api.client.get(api.base + path, headers=headers or None)
        return response.code, (await response.content()).decode("utf-8")

    async def test_auth_applies(self) -> None:
        """With API credentials, /metrics needs them, as every route but /health."""
        api = await self.start(api_username="ops", api_password="pw")
        code, body = await self.get(api, "/metrics")
        self.assertEqual(code, 401, body)
        basic = "Basic " + base64.b64encode(b"ops:pw").decode()
        code, body = await self.get(api, "/metrics", Authorization=basic)
        self.assertEqual(code, 200)
        self.assertIn("junebug_build_info", families(body))

    async def test_text_format_unless_openmetrics_asked_for(self) -> None:
        api = await self.start()
        response = await api.client.get(api.base + "/metrics")
        text = (await response.content()).decode()
        self.assertEqual(
            response.headers.getRawHeaders("content-type"),
            ["text/plain; version=0.0.4; charset=utf-8"],
        )
        self.assertIn("junebug_rabbitmq_connected", families(text))
        response = await api.client.get(
            api.base + "/metrics",
            headers={"Accept": "application/openmetrics-text; version=1.0.0"},
        )
        body = (await response.content()).decode()
        [content_type] = response.headers.getRawHeaders("content-type")
        self.assertTrue(content_type.startswith("application/openmetrics-text"))
        self.assertTrue(body.endswith("# EOF\n"))

    async def test_in_openapi(self) -> None:
        api = await self.start()
        code, document, _ = await api.request("GET", "/openapi.json")
        self.assertEqual(code, 200)
        responses = document["paths"]["/metrics"]["get"]["responses"]
        self.assertIn("text/plain; version=0.0.4", responses["200"]["content"])

    async def test_each_junebug_has_its_own_registry(self) -> None:
        """Two Junebugs in one process count apart; the global registry stays
        free of Junebug families."""
        first, second = await self.start(), await self.start()
        fake = {"type": "fake", "config": {}}
        code, created, _ = await first.request("POST", "/channels/", fake)
        self.assertEqual(code, 201)
        await first.transport(created["result"]["id"]).receive("hello")
        _, one = await self.get(first, "/metrics")
        _, other = await self.get(second, "/metrics")
        self.assertTrue(families(one)["junebug_messages_received"].samples)
        self.assertEqual(families(other)["junebug_messages_received"].samples, [])
        self.assertNotIn(b"junebug_", generate_latest(REGISTRY))

    async def test_route_label_is_the_template(self) -> None:
        """Latency is labelled by route template, and by ``unmatched`` for a
        path no route has, so ids and junk paths cannot create series."""
        api = await self.start()
        await api.request("GET", "/channels/some-id")
        await api.request("GET", "/no/such/path/123")
        await api.request("BREW", "/channels/")
        _, body = await self.get(api, "/metrics")
        labels = {
            (s.labels["route"], s.labels["method"])
            for s in families(body)["junebug_api_request_duration_seconds"].samples
        }
        self.assertIn(("/channels/{channel_id}", "GET"), labels)
        self.assertIn(("unmatched", "GET"), labels)
        self.assertIn(("unmatched", "other"), labels)
        self.assertFalse([route for route, _ in labels if "some-id" in route])


class ChannelMetricsTests(SynchronousTestCase):
    def test_children_looked_up_once(self) -> None:
        """Counting an event is a cached child's inc(), not a labels() lookup."""
        metrics = JunebugMetrics()
        lookups: list[tuple[str, ...]] = []
        real = metrics.events.labels

        def counting(*labels: str) -> Any:
            lookups.append(labels)
            return real(*labels)

        metrics.events.labels = counting  # type: ignore[method-assign]
        channel = metrics.channel("c1", "smpp")
        for _ in range(5):
            channel.event("ack")
        channel.event("nack")
        self.assertEqual(lookups, [("c1", "ack"), ("c1", "nack")])
        self.assertEqual(metrics.sent.labels("c1", "smpp")._value.get(), 5)
        self.assertEqual(metrics.failed.labels("c1", "smpp")._value.get(), 1)
