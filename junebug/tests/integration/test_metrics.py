"""``GET /metrics`` after real traffic: an SMPP channel against the node SMSC
peer (MT, MO, ack and delivery reports, a failing and a refusing event_url,
MT left waiting in two priority queues while paused, then held back by a
rate limit) and a fake channel that nacks, all through the API.  Every family
of :mod:`junebug.metrics.families` and :mod:`junebug.metrics.state` is
checked against what the traffic must have made it."""

from __future__ import annotations

import math
from typing import Any

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from junebug import __version__
from junebug.amqp import topology
from junebug.amqp.memory import MemoryBroker
from junebug.metrics.families import RATE_LIMIT_BUCKETS
from junebug.testing.api import ApiDriver
from junebug.testing.backends_away import StoreSwitch
from junebug.testing.http_sink import HttpSink
from junebug.testing.polling import poll_until, wait_until
from junebug.tests.support.smsc import SmscPeer

WINDOW = 7
#: MT sent while the SMPP channel is paused, by priority.
WAITING = {1: 2, 4: 3}
#: The rate limit then set (per a window far longer than the test): this
#: many of them go at once, the others wait (holding a window slot) until
#: the limit is lifted.
LIMIT = 2
HELD = sum(WAITING.values()) - LIMIT
#: Log entries made while the store is away.
LOST = 4

Found = dict[tuple[str, frozenset[tuple[str, str]]], float]


def samples(text: str) -> Found:
    """Every sample of the exposition, by name and labels (parsed by the
    library's own parser, so the output is valid text format)."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[sample.name, frozenset(sample.labels.items())] = sample.value
    return found


def value(found: Found, name: str, **labels: str) -> float | None:
    return found.get((name, frozenset(labels.items())))


def buckets(found: Found, name: str, **labels: str) -> dict[float, float]:
    """A histogram's cumulative bucket counts, by upper bound."""
    wanted = set(labels.items())
    return {
        float(dict(labs)["le"]): count
        for (sample, labs), count in found.items()
        if sample == name + "_bucket"
        and {(k, v) for k, v in labs if k != "le"} == wanted
    }


class MetricsAfterTrafficTests(TestCase):
    scrapes = 0

    async def sink(self, code: int = 200) -> tuple[HttpSink, str]:
        sink = HttpSink(reactor)
        base = await sink.start()
        sink.response_code = code
        self.addCleanup(sink.stop)
        return sink, base

    async def scrape(self, api: ApiDriver) -> tuple[str, Any]:
        self.scrapes += 1
        response = await api.client.get(api.base + "/metrics")
        body = (await response.content()).decode("utf-8")
        self.assertEqual(response.code, 200, body)
        return body, response.headers

    async def scraped(self, api: ApiDriver) -> Found:
        return samples((await self.scrape(api))[0])

    async def send(
        self, api: ApiDriver, cid: str, event_url: str | None, priority: int = 1
    ) -> str:
        body: dict[str, Any] = {"to": "27820000001", "from": "1234", "content": "hi"}
        if event_url is not None:
            body["event_url"] = event_url
        if priority != 1:
            body["priority"] = priority
        code, sent, _ = await api.request("POST", f"/channels/{cid}/messages/", body)
        self.assertEqual(code, 201, sent)
        return str(sent["result"]["message_id"])

    async def post(self, api: ApiDriver, path: str, body: Any = None) -> None:
        code, answer, _ = await api.request("POST", path, body)
        self.assertEqual(code, 200, answer)

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
        junebug = api.junebug
        assert junebug is not None
        metrics = junebug.metrics

        def now() -> Found:
            """The registry as a scrape would see it, but for the queue
            depths (read from the broker by the route only)."""
            return samples(generate_latest(metrics.registry).decode())

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

        def lift_limit() -> None:
            """Let MT held by the rate limit go: were the test to fail while
            they wait, stopping Junebug would wait for them."""
            channel = junebug.channels.running(cid)
            if channel is not None and channel.properties.get("rate_limit_count"):
                channel.properties = {**channel.properties, "rate_limit_count": 0}

        self.addCleanup(lift_limit)
        mo = await good.next(timeout=20)
        self.assertEqual(mo.path, "/mo")
        await self.send(api, cid, good_url + "/ev")
        for _ in range(2):
            await good.next(timeout=20)  # submitted, delivery_succeeded
        smpp = {"channel_id": cid, "channel_type": "smpp"}
        of_cid = {"channel_id": cid}
        queues = {topology.outbound_at(cid, p): p for p in topology.PRIORITIES}
        self.assertEqual(queues[f"{cid}.outbound"], 1)
        self.assertEqual(queues[f"{cid}.outbound.p4"], 4)

        def depths(found: Found) -> dict[int, float | None]:
            return {
                p: value(found, "junebug_queue_messages", channel_id=cid, queue=q)
                for q, p in queues.items()
            }

        # Paused: the MT waits in its priority's queue.
        await self.post(api, f"/channels/{cid}/pause")
        await self.post(
            api,
            f"/channels/{cid}",
            {"rate_limit_count": LIMIT, "rate_limit_window": 600},
        )
        for priority, count in WAITING.items():
            for _ in range(count):
                await self.send(api, cid, None, priority)
        waiting = {p: WAITING.get(p, 0) for p in topology.PRIORITIES}

        async def queued() -> Found | None:
            found = await self.scraped(api)
            return found if depths(found) == waiting else None

        found = await poll_until(queued, timeout=10)
        self.assertEqual(value(found, "junebug_messages_sent_total", **smpp), 1)
        self.assertEqual(value(found, "junebug_smpp_window_in_use", **of_cid), 0)
        self.assertEqual(
            value(found, "junebug_rate_limit_wait_seconds_count", **of_cid), 0
        )

        # Resumed: LIMIT go at once, HELD wait for the rate limit, each
        # holding a slot of the SMPP window.
        await self.post(api, f"/channels/{cid}/resume")

        def holding() -> bool:
            found = now()
            return (
                value(found, "junebug_smpp_submit_response_seconds_count", **of_cid)
                == 1 + LIMIT
                and value(found, "junebug_messages_sent_total", **smpp) == 1 + LIMIT
                and value(found, "junebug_smpp_window_in_use", **of_cid) == HELD
            )

        await wait_until(holding, timeout=10)
        held_since = reactor.seconds()
        found = await self.scraped(api)
        self.assertEqual(depths(found), dict.fromkeys(topology.PRIORITIES, 0))
        self.assertEqual(value(found, "junebug_smpp_window_in_use", **of_cid), HELD)
        self.assertEqual(value(found, "junebug_smpp_window_size", **of_cid), WINDOW)
        # Observed as each is let through: the held ones are not yet.
        self.assertEqual(
            value(found, "junebug_rate_limit_wait_seconds_count", **of_cid), LIMIT
        )

        # The limit lifted: the held ones go.
        lifted_at = reactor.seconds()
        await self.post(api, f"/channels/{cid}", {"rate_limit_count": 0})
        sent = 1 + sum(WAITING.values())

        def drained() -> bool:
            found = now()
            return (
                value(found, "junebug_smpp_submit_receipt_seconds_count", **of_cid)
                == sent
                and value(found, "junebug_smpp_window_in_use", **of_cid) == 0
            )

        await wait_until(drained, timeout=20)

        await self.send(api, cid, refusing_url + "/ev")
        await self.send(api, cid, failing_url + "/ev")
        sent += 2
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

        def handoffs(found: Found, kind: str) -> list[float]:
            """A kind's hand-offs to the forwarder, and those left to the queue."""
            return [
                value(found, "junebug_handoffs_total", kind=kind, way=way) or 0
                for way in ("forwarder", "queue")
            ]

        def settled() -> bool:
            found = now()
            return (
                value(found, "junebug_smpp_submit_receipt_seconds_count", **of_cid)
                == sent
                and (value(found, "junebug_http_callback_dead_letters_total") or 0) >= 2
                and (value(found, "junebug_http_callback_retries_total") or 0) >= 2
                and sum(handoffs(found, "event")) == 2 * sent + 1
            )

        await wait_until(settled, timeout=20)

        text, headers = await self.scrape(api)
        self.assertTrue(
            headers.getRawHeaders("content-type")[0].startswith("text/plain; version=")
        )
        found = samples(text)
        # Messages and events.
        self.assertEqual(value(found, "junebug_messages_received_total", **smpp), 1)
        self.assertEqual(value(found, "junebug_messages_sent_total", **smpp), sent)
        self.assertEqual(value(found, "junebug_messages_failed_total", **smpp), 0)
        nacking = {"channel_id": fid, "channel_type": "fake"}
        self.assertEqual(value(found, "junebug_messages_received_total", **nacking), 0)
        self.assertEqual(value(found, "junebug_messages_sent_total", **nacking), 0)
        self.assertEqual(value(found, "junebug_messages_failed_total", **nacking), 1)
        for channel, event_type, count in (
            (cid, "ack", sent),
            (cid, "delivery_report", sent),
            (fid, "nack", 1),
        ):
            self.assertEqual(
                value(
                    found,
                    "junebug_events_total",
                    channel_id=channel,
                    event_type=event_type,
                ),
                count,
                event_type,
            )
        self.assertIsNone(
            value(found, "junebug_events_total", channel_id=cid, event_type="nack")
        )
        # Each of those events, and the MO, went to its channel's forwarder
        # by the short way (or, were one slow, to the queue).
        self.assertEqual(sum(handoffs(found, "event")), 2 * sent + 1)
        self.assertGreater(handoffs(found, "event")[0], 0)
        self.assertEqual(sum(handoffs(found, "mo")), 1)
        # SMPP round trips and receipts: one each per submit_sm, all quick.
        for name in (
            "junebug_smpp_submit_response_seconds",
            "junebug_smpp_submit_receipt_seconds",
        ):
            self.assertEqual(value(found, name + "_count", **of_cid), sent, name)
            counts = buckets(found, name, **of_cid)
            self.assertEqual(counts[math.inf], sent, name)
            self.assertEqual(counts[5.0], sent, name)
            total = value(found, name + "_sum", **of_cid)
            assert total is not None
            self.assertTrue(0 <= total < 5.0 * sent, (name, total))
        self.assertGreater(
            value(found, "junebug_smpp_submit_response_seconds_sum", **of_cid), 0
        )
        # (A channel that is not SMPP observes none, if it has the series.)
        self.assertFalse(
            value(found, "junebug_smpp_submit_response_seconds_count", channel_id=fid)
        )
        # The rate limit: one observation per submit_sm sent under it, the
        # HELD ones at least as long as they were seen held.
        wait = "junebug_rate_limit_wait_seconds"
        waiting_total = sum(WAITING.values())
        self.assertEqual(value(found, wait + "_count", **of_cid), waiting_total)
        counts = buckets(found, wait, **of_cid)
        self.assertEqual(sorted(counts), sorted([*RATE_LIMIT_BUCKETS, math.inf]))
        self.assertEqual(counts[math.inf], waiting_total)
        at_least = lifted_at - held_since
        self.assertGreater(at_least, 0)
        for bound, count in counts.items():
            if bound < at_least:
                self.assertLessEqual(count, LIMIT, (bound, counts))
        wait_sum = value(found, wait + "_sum", **of_cid)
        assert wait_sum is not None
        self.assertGreaterEqual(wait_sum, HELD * at_least)
        # The fake channel has no limit: nothing observed.
        self.assertEqual(value(found, wait + "_count", channel_id=fid), 0)
        # HTTP callbacks: 1 MO + 2 good events + 1 fake event delivered; 2
        # refused (400, dead at once) and 2 failing (503: scheduled for a
        # retry).  The MT sent without an event_url posted nothing.
        self.assertEqual(value(found, "junebug_http_callback_attempts_total"), 8)
        self.assertEqual(value(found, "junebug_http_callback_failures_total"), 4)
        self.assertEqual(value(found, "junebug_http_callback_retries_total"), 2)
        self.assertEqual(value(found, "junebug_http_callback_dead_letters_total"), 2)
        # The store was there all along: no log entry dropped.
        self.assertEqual(value(found, "junebug_stored_log_entries_dropped_total"), 0)
        # Scrape-time gauges.
        self.assertEqual(depths(found), dict.fromkeys(topology.PRIORITIES, 0))
        self.assertEqual(value(found, "junebug_smpp_window_in_use", **of_cid), 0)
        self.assertEqual(value(found, "junebug_smpp_window_size", **of_cid), WINDOW)
        self.assertEqual(value(found, "junebug_smpp_bound", **of_cid), 1)
        for name in (
            "junebug_smpp_window_in_use",
            "junebug_smpp_window_size",
            "junebug_smpp_bound",
        ):
            self.assertIsNone(value(found, name, channel_id=fid), name)
        self.assertEqual(value(found, "junebug_redis_connected"), 1)
        self.assertEqual(value(found, "junebug_rabbitmq_connected"), 1)
        # API requests, by route template.
        requests = "junebug_api_request_duration_seconds"
        for route, method, count in (
            ("/channels/{channel_id}/messages/", "POST", sent + 1),
            ("/channels/", "POST", 2),
            ("/channels/{channel_id}", "POST", 2),
            ("/channels/{channel_id}/pause", "POST", 1),
            ("/channels/{channel_id}/resume", "POST", 1),
            # This scrape is counted once answered.
            ("/metrics", "GET", self.scrapes - 1),
        ):
            labels = {"route": route, "method": method}
            self.assertEqual(value(found, requests + "_count", **labels), count, route)
            self.assertGreater(value(found, requests + "_sum", **labels), 0, route)
        # The process.
        self.assertEqual(value(found, "junebug_build_info", version=__version__), 1)
        me = junebug.cluster.identity
        self.assertEqual(
            value(
                found,
                "junebug_process_info",
                process_id=me.id,
                host=me.host,
                pid=str(me.pid),
                worker="",
            ),
            1,
        )
        self.assertGreater(value(found, "process_cpu_seconds_total"), 0)
        self.assertGreater(value(found, "process_resident_memory_bytes"), 0)
        self.assertGreater(value(found, "process_open_fds"), 0)
        started = value(found, "process_start_time_seconds")
        assert started is not None
        self.assertLess(started, reactor.seconds())
        self.assertEqual(
            [v for (name, _), v in found.items() if name == "python_info"], [1]
        )

        # RabbitMQ away: the gauge says so and no depth is reported.
        broker = junebug.broker
        assert isinstance(broker, MemoryBroker)
        broker.disconnect()
        try:
            found = await self.scraped(api)
        finally:
            broker.reconnect()
        self.assertEqual(value(found, "junebug_rabbitmq_connected"), 0)
        self.assertEqual(depths(found), dict.fromkeys(topology.PRIORITIES, None))
        found = await self.scraped(api)
        self.assertEqual(value(found, "junebug_rabbitmq_connected"), 1)
        self.assertEqual(depths(found), dict.fromkeys(topology.PRIORITIES, 0))

        # The store away: the channel's log entries are dropped and counted.
        dropped = "junebug_stored_log_entries_dropped_total"
        channel = junebug.channels.running(cid)
        assert channel is not None
        await junebug.stored_logs.flush()
        store = StoreSwitch(junebug.backend)
        store.away = True
        try:
            for i in range(LOST):
                channel.log.info("Not stored {i}", i=i)
            await junebug.stored_logs.flush()
        finally:
            store.back()
        found = await self.scraped(api)
        self.assertGreaterEqual(value(found, dropped), LOST)
        self.assertEqual(value(found, "junebug_redis_connected"), 1)

        # A deleted channel's series go with it.
        code, _, _ = await api.request("DELETE", f"/channels/{fid}")
        self.assertEqual(code, 200)
        found = await self.scraped(api)
        self.assertFalse([key for key in found if ("channel_id", fid) in key[1]])
        self.assertEqual(value(found, "junebug_messages_sent_total", **smpp), sent)

        # The SMSC gone: unbound.
        await peer.stop()
        await wait_until(
            lambda: value(now(), "junebug_smpp_bound", **of_cid) == 0, timeout=10
        )
