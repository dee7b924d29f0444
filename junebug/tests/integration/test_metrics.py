"""``GET /metrics`` after real traffic: an SMPP channel against the node SMSC
peer (MT, MO, ack and delivery reports, a failing and a refusing event_url)
and a fake channel that nacks, all through the API."""

from __future__ import annotations

from typing import Any

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from junebug.testing.api import ApiDriver
from junebug.testing.http_sink import HttpSink
from junebug.testing.polling import wait_until
from junebug.tests.support.smsc import SmscPeer

WINDOW = 7


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of the exposition, by name and labels (parsed by the
    library's own parser, so the output is valid text format)."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[sample.name, frozenset(sample.labels.items())] = sample.value
    return found


def value(found: dict[Any, float], name: str, **labels: str) -> float | None:
    return found.get((name, frozenset(labels.items())))


class MetricsAfterTrafficTests(TestCase):
    async def sink(self, code: int = 200) -> tuple[HttpSink, str]:
        sink = HttpSink(reactor)
        base = await sink.start()
        sink.response_code = code
        self.addCleanup(sink.stop)
        return sink, base

    async def scrape(self, api: ApiDriver) -> tuple[str, Any]:
        response = await api.client.get(api.base + "/metrics")
        body = (await response.content()).decode("utf-8")
        self.assertEqual(response.code, 200, body)
        return body, response.headers

    async def send(self, api: ApiDriver, cid: str, event_url: str) -> str:
        code, sent, _ = await api.request(
            "POST",
            f"/channels/{cid}/messages/",
            {
                "to": "27820000001",
                "from": "1234",
                "content": "hi",
                "event_url": event_url,
            },
        )
        self.assertEqual(code, 201, sent)
        return str(sent["result"]["message_id"])

    async def test_every_family_after_traffic(self) -> None:
        """Counters, histograms and scrape-time gauges say what happened."""
        peer = SmscPeer(reactor, "node", mode="dlr")
        await peer.start()
        self.addCleanup(peer.stop)
        good, good_url = await self.sink()
        _, refusing_url = await self.sink(400)  # dead letter at once
        _, failing_url = await self.sink(503)  # retried later
        api = ApiDriver(reactor)
        self.addCleanup(api.stop)
        await api.start()
        code, created, _ = await api.request(
            "POST",
            "/channels/",
            {
                "type": "smpp",
                "mo_url": good_url + "/mo",
                "config": {
                    "twisted_endpoint": peer.endpoint,
                    "system_id": "esme1",
                    "password": "secret",
                    "window_size": WINDOW,
                    "initial_reconnect_delay": 0.1,
                },
            },
        )
        self.assertEqual(code, 201, created)
        cid = created["result"]["id"]
        mo = await good.next(timeout=20)
        self.assertEqual(mo.path, "/mo")
        await self.send(api, cid, good_url + "/ev")
        for _ in range(2):
            await good.next(timeout=20)  # submitted, delivery_succeeded
        await self.send(api, cid, refusing_url + "/ev")
        await self.send(api, cid, failing_url + "/ev")
        code, fake, _ = await api.request(
            "POST",
            "/channels/",
            {
                "type": "fake",
                "mo_url": good_url + "/fake",
                "config": {"nack_reason": "no"},
            },
        )
        self.assertEqual(code, 201, fake)
        fid = fake["result"]["id"]
        await self.send(api, fid, good_url + "/fake-ev")
        await good.next(timeout=20)  # the nack's event
        metrics = api.junebug.metrics  # type: ignore[union-attr]

        def settled() -> bool:
            found = samples(generate_latest(metrics.registry).decode())
            return (
                value(
                    found, "junebug_smpp_submit_receipt_seconds_count", channel_id=cid
                )
                == 3
                and (value(found, "junebug_http_callback_dead_letters_total") or 0) >= 2
                and (value(found, "junebug_http_callback_retries_total") or 0) >= 2
            )

        await wait_until(settled, timeout=20)

        text, headers = await self.scrape(api)
        self.assertTrue(
            headers.getRawHeaders("content-type")[0].startswith("text/plain; version=")
        )
        found = samples(text)
        smpp = {"channel_id": cid, "channel_type": "smpp"}
        self.assertEqual(value(found, "junebug_messages_received_total", **smpp), 1)
        self.assertEqual(value(found, "junebug_messages_sent_total", **smpp), 3)
        self.assertEqual(value(found, "junebug_messages_failed_total", **smpp), 0)
        nacking = {"channel_id": fid, "channel_type": "fake"}
        self.assertEqual(value(found, "junebug_messages_sent_total", **nacking), 0)
        self.assertEqual(value(found, "junebug_messages_failed_total", **nacking), 1)
        self.assertEqual(
            value(found, "junebug_events_total", channel_id=cid, event_type="ack"), 3
        )
        self.assertEqual(
            value(
                found,
                "junebug_events_total",
                channel_id=cid,
                event_type="delivery_report",
            ),
            3,
        )
        self.assertEqual(
            value(found, "junebug_events_total", channel_id=fid, event_type="nack"), 1
        )
        for name in (
            "junebug_smpp_submit_response_seconds_count",
            "junebug_smpp_submit_receipt_seconds_count",
        ):
            self.assertEqual(value(found, name, channel_id=cid), 3, name)
        self.assertGreater(
            value(found, "junebug_smpp_submit_response_seconds_sum", channel_id=cid), 0
        )
        # 1 MO + 2 good events + 1 fake event delivered; 2 refused (400, dead
        # at once) and 2 failing (503: scheduled for a retry).
        attempts = value(found, "junebug_http_callback_attempts_total")
        failures = value(found, "junebug_http_callback_failures_total")
        self.assertEqual(attempts, 8)
        self.assertEqual(failures, 4)
        self.assertEqual(value(found, "junebug_http_callback_retries_total"), 2)
        self.assertEqual(value(found, "junebug_http_callback_dead_letters_total"), 2)
        outbound = {"channel_id": cid, "queue": f"{cid}.outbound"}
        self.assertEqual(value(found, "junebug_queue_messages", **outbound), 0)
        self.assertEqual(value(found, "junebug_smpp_window_in_use", channel_id=cid), 0)
        self.assertEqual(
            value(found, "junebug_smpp_window_size", channel_id=cid), WINDOW
        )
        self.assertEqual(value(found, "junebug_smpp_bound", channel_id=cid), 1)
        self.assertIsNone(value(found, "junebug_smpp_bound", channel_id=fid))
        self.assertEqual(value(found, "junebug_redis_connected"), 1)
        self.assertEqual(value(found, "junebug_rabbitmq_connected"), 1)
        route = {"route": "/channels/{channel_id}/messages/", "method": "POST"}
        self.assertEqual(
            value(found, "junebug_api_request_duration_seconds_count", **route), 4
        )
        self.assertEqual(
            value(
                found,
                "junebug_api_request_duration_seconds_count",
                route="/channels/",
                method="POST",
            ),
            2,
        )
        self.assertIn("junebug_build_info", {name for name, _ in found})
        self.assertIsNotNone(value(found, "process_cpu_seconds_total"))

        # A deleted channel's series go with it.
        code, _, _ = await api.request("DELETE", f"/channels/{fid}")
        self.assertEqual(code, 200)
        found = samples((await self.scrape(api))[0])
        self.assertFalse([key for key in found if ("channel_id", fid) in key[1]])
        self.assertEqual(value(found, "junebug_messages_sent_total", **smpp), 3)
