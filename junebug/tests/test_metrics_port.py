"""``metrics_port``: each process's own ``/metrics`` and ``/health/live``
(worker k on ``metrics_port + k - 1``), behind the API's auth, and the
``junebug_process_info`` that tells the scrapes of several processes apart."""

from __future__ import annotations

import tempfile
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from treq.client import HTTPClient
from twisted.internet import reactor
from twisted.internet.defer import CancelledError
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.client import Agent, HTTPConnectionPool

from junebug.config import build_config
from junebug.errors import ConfigError
from junebug.service import Junebug, build
from junebug.testing.api import ApiDriver
from junebug.testing.polling import wait_until
from junebug.tests.support.process import free_port


def process_info(text: str) -> list[dict[str, str]]:
    """The label sets of ``junebug_process_info`` in an exposition."""
    return [
        sample.labels
        for family in text_string_to_metric_families(text)
        if family.name == "junebug_process_info"
        for sample in family.samples
    ]


class PortPerWorkerTests(SynchronousTestCase):
    def config(self, **layer: Any) -> Any:
        return build_config({"embedded": True, **layer})

    def test_worker_k_uses_metrics_port_plus_k_minus_1(self) -> None:
        config = build_config({"metrics_port": 9100, "workers": 3})
        self.assertEqual(config.metrics_port_of(None), 9100)
        self.assertEqual(config.metrics_port_of(1), 9100)
        self.assertEqual(config.metrics_port_of(3), 9102)

    def test_unset_is_none_and_0_stays_0(self) -> None:
        self.assertIsNone(self.config().metrics_port_of(2))
        config = build_config({"metrics_port": 0, "workers": 2})
        self.assertEqual(config.metrics_port_of(2), 0)

    def test_the_ports_must_fit_and_not_take_the_api_ports(self) -> None:
        with self.assertRaisesRegex(ConfigError, "past port 65535"):
            build_config({"metrics_port": 65535, "workers": 2})
        with self.assertRaisesRegex(ConfigError, "9100-9102 include port 9101"):
            build_config({"metrics_port": 9100, "workers": 3, "port": 9101})
        with self.assertRaisesRegex(ConfigError, "include dialect_port 9100"):
            build_config({"metrics_port": 9100, "dialect_port": 9100})
        with self.assertRaisesRegex(ConfigError, "70000 is not a TCP port"):
            build_config({"metrics_port": 70000})


class MetricsPortTests(TestCase):
    def setUp(self) -> None:
        pool = HTTPConnectionPool(reactor, persistent=False)
        self.client = HTTPClient(Agent(reactor, pool=pool))

    async def start(self, worker: int | None = None, **layer: Any) -> Junebug:
        config = build_config(
            {
                "embedded": True,
                "interface": "127.0.0.1",
                "port": 0,
                "logging_path": tempfile.mkdtemp(prefix="junebug-logs-"),
                **layer,
            }
        )
        junebug = build(reactor, config, worker=worker)
        self.addCleanup(junebug.stop)
        await junebug.start()
        return junebug

    def port(self, junebug: Junebug) -> int:
        assert junebug.metrics_listener is not None
        port: int = junebug.metrics_listener.getHost().port  # type: ignore[attr-defined]
        return port

    async def get(self, port: int, path: str, **headers: str) -> tuple[int, str]:
        response = await self.client.get(
            f"http://127.0.0.1:{port}{path}", headers=headers or None
        )
        return response.code, (await response.content()).decode("utf-8")

    async def test_no_metrics_port_unless_configured(self) -> None:
        junebug = await self.start()
        self.assertIsNone(junebug.metrics_listener)

    async def test_serves_metrics_and_liveness_only(self) -> None:
        """/metrics (with this process's id) and /health/live; nothing of the API."""
        junebug = await self.start(metrics_port=0)
        port = self.port(junebug)
        code, body = await self.get(port, "/metrics")
        self.assertEqual(code, 200, body)
        me = junebug.cluster.identity
        self.assertEqual(
            process_info(body),
            [
                {
                    "process_id": me.id,
                    "host": me.host,
                    "pid": str(me.pid),
                    "worker": "",
                }
            ],
        )
        self.assertIn("junebug_rabbitmq_connected", body)
        code, body = await self.get(port, "/health/live")
        self.assertEqual((code, '"state": "ready"' in body), (200, True), body)
        code, _ = await self.get(port, "/channels/")
        self.assertEqual(code, 404)
        # The API port's /metrics shows the same process.
        assert junebug.port is not None
        api = junebug.port.getHost().port  # type: ignore[attr-defined]
        code, body = await self.get(api, "/metrics")
        self.assertEqual(process_info(body)[0]["process_id"], me.id)

    async def test_worker_k_listens_on_metrics_port_plus_k_minus_1(self) -> None:
        wanted = free_port()
        junebug = await self.start(worker=2, metrics_port=wanted - 1, workers=1)
        self.assertEqual(self.port(junebug), wanted)
        code, body = await self.get(wanted, "/metrics")
        self.assertEqual(code, 200)
        self.assertEqual(process_info(body)[0]["worker"], "2")

    async def test_workers_share_the_dialect_port(self) -> None:
        """Each worker binds ``dialect_port`` itself (SO_REUSEPORT): the
        second does not fail on an address in use, and both answer."""
        wanted = free_port()
        first = await self.start(worker=1, dialect_port=wanted)
        second = await self.start(worker=2, dialect_port=wanted)
        for junebug in (first, second):
            listener = junebug.dialect_listener
            assert listener is not None
            self.assertEqual(listener.getHost().port, wanted)  # type: ignore[attr-defined]
        code, body = await self.get(wanted, "/cgi-bin/sendsms")
        self.assertNotEqual(code, 404, body)

    async def test_the_apis_credentials_apply_but_liveness_stays_open(self) -> None:
        junebug = await self.start(metrics_port=0, api_token="tok")
        port = self.port(junebug)
        code, body = await self.get(port, "/metrics")
        self.assertEqual(code, 401, body)
        self.assertIn("Unauthorized", body)
        code, body = await self.get(port, "/metrics", Authorization="Token wrong")
        self.assertEqual(code, 401, body)
        code, body = await self.get(port, "/metrics", Authorization="Token tok")
        self.assertEqual(code, 200, body)
        self.assertTrue(process_info(body))
        code, _ = await self.get(port, "/health/live")
        self.assertEqual(code, 200)

    async def test_the_port_closes_when_junebug_stops(self) -> None:
        junebug = await self.start(metrics_port=0)
        listener = junebug.metrics_listener
        await junebug.stop()
        self.assertIsNone(junebug.metrics_listener)
        self.assertIsNotNone(listener)

    async def test_answers_while_the_api_waits_for_redis(self) -> None:
        """Not behind the start-up gate: while the start waits for Redis
        (nothing listens on its port), the API's /metrics is 503 and the
        metrics port's says Redis is not connected."""
        api = ApiDriver(reactor)
        self.addCleanup(api.stop)
        starting = api.starting(
            embedded=False,
            metrics_port=0,
            redis={"host": "127.0.0.1", "port": free_port()},
        )
        assert api.junebug is not None
        junebug = api.junebug
        await wait_until(lambda: junebug.readiness.waiting_for.startswith("Redis"))
        code, body = await self.get(self.port(junebug), "/metrics")
        self.assertEqual(code, 200, body)
        self.assertIn("junebug_redis_connected 0.0", body)
        code, _, _ = await api.request("GET", "/metrics")
        self.assertEqual(code, 503)
        await junebug.stop()
        with self.assertRaises(CancelledError):
            await starting
        self.assertIsNone(junebug.metrics_listener)
