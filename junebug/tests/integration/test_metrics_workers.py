"""``jb --workers 2 --metrics-port P`` as real processes on the test Redis and
RabbitMQ: worker 1 serves its own ``/metrics`` on P and worker 2 on P + 1,
each naming a different process (``junebug_process_info``)."""

from __future__ import annotations

from treq.client import HTTPClient
from twisted.internet import reactor
from twisted.trial.unittest import TestCase
from twisted.web.client import Agent, HTTPConnectionPool

from junebug.testing.redis import start_redis_fixture
from junebug.tests.integration.test_workers import Workers, jb_args
from junebug.tests.support.process import free_consecutive_ports
from junebug.tests.test_metrics_port import process_info


class MetricsPerWorkerTests(TestCase):
    timeout = 120

    async def test_each_worker_serves_its_own_metrics_port(self) -> None:
        redis = await start_redis_fixture(self, reactor)
        first = free_consecutive_ports(2)
        workers = Workers(
            self,
            jb_args(redis.prefix, "--workers", "2", "--metrics-port", str(first)),
        )
        await workers.start(ready=2)
        client = HTTPClient(Agent(reactor, pool=HTTPConnectionPool(reactor, False)))
        seen: dict[str, dict[str, str]] = {}
        for worker, port in (("1", first), ("2", first + 1)):
            response = await client.get(f"http://127.0.0.1:{port}/metrics")
            self.assertEqual(response.code, 200, workers.output)
            [labels] = process_info((await response.content()).decode("utf-8"))
            self.assertEqual(labels["worker"], worker)
            seen[worker] = labels
        self.assertNotEqual(seen["1"]["process_id"], seen["2"]["process_id"])
        pids = {int(labels["pid"]) for labels in seen.values()}
        self.assertEqual(pids, workers.workers())
