"""Several Junebugs on one real Redis and RabbitMQ form one gateway.

Each test builds two to four in-process Junebugs (``junebug.service.build``,
API on port 0) with the same Redis key prefix and RabbitMQ vhost, and one
test adds a real ``jb`` subprocess to SIGKILL.  Leases are short here
(``LEASE`` seconds) so a lost process's channels move quickly.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections import Counter
from typing import Any

import pytest
from treq.client import HTTPClient
from twisted.internet import reactor, task
from twisted.internet.defer import DeferredSemaphore, gatherResults
from twisted.trial.unittest import TestCase
from twisted.web.client import Agent, HTTPConnectionPool

from junebug.amqp import topology
from junebug.testing.api import ApiDriver, json_request
from junebug.testing.polling import poll_until, wait_until
from junebug.testing.rabbitmq import (
    list_queue_names,
    queue_exists,
    rabbitmq_test_settings,
)
from junebug.testing.redis import RedisFixture, start_redis_fixture
from junebug.testing.telnet_client import connect_line_client
from junebug.tests.support.process import JbProcess, free_port

LEASE = 3.0
INTERVAL = 0.25
TELNET = {"type": "telnet", "config": {"twisted_endpoint": "tcp:0"}}


def gateway_flags(
    redis: Any, vhost: str, lease: float, interval: float
) -> list[str]:
    """``jb`` flags joining the gateway of the test's Redis prefix and vhost."""
    address = redis.address
    return [
        "--redis-host",
        address.host,
        "--redis-port",
        str(address.port),
        "--redis-db",
        str(address.db),
        "--redis-key-prefix",
        redis.prefix,
        "--amqp-vhost",
        vhost,
        "--cluster-lease-seconds",
        str(lease),
        "--cluster-reconcile-interval",
        str(interval),
    ]


class ClusterCase(TestCase):
    """Helpers: Junebugs sharing this test's key prefix and vhost."""

    timeout = 120

    async def setUp(self) -> None:
        self.redis: RedisFixture = await start_redis_fixture(self, reactor)
        self.settings = rabbitmq_test_settings()

    def layer(self) -> dict[str, Any]:
        address = self.redis.address
        return {
            "embedded": False,
            "redis": {
                "host": address.host,
                "port": address.port,
                "db": address.db,
                "password": address.password,
                "key_prefix": self.redis.prefix,
            },
            "amqp": {
                "hostname": self.settings.host,
                "port": self.settings.port,
                "vhost": self.settings.vhost,
                "username": self.settings.username,
                "password": self.settings.password,
            },
            "cluster": {
                "lease_seconds": LEASE,
                "reconcile_interval": INTERVAL,
                "control_timeout": 5,
            },
        }

    async def start(self, **cluster: Any) -> ApiDriver:
        api = ApiDriver(reactor)
        self.addCleanup(api.stop)
        layer = self.layer()
        layer["cluster"].update(cluster)
        await api.start(**layer)
        return api

    async def create(self, api: ApiDriver, body: dict[str, Any]) -> str:
        code, created, _ = await api.request("POST", "/channels/", body)
        self.assertEqual(code, 201, created)
        channel_id: str = created["result"]["id"]
        return channel_id

    def runners(self, apis: list[ApiDriver], channel_id: str) -> list[ApiDriver]:
        return [api for api in apis if api.transport(channel_id) is not None]

    def placed_once(self, apis: list[ApiDriver], channels: list[str]) -> bool:
        return all(len(self.runners(apis, cid)) == 1 for cid in channels)

    def spread(self, apis: list[ApiDriver], channels: list[str]) -> list[int]:
        counts = Counter(
            id(runner) for cid in channels for runner in self.runners(apis, cid)
        )
        return sorted(counts.get(id(api), 0) for api in apis)

    def process_id(self, api: ApiDriver) -> str:
        assert api.junebug is not None
        return api.junebug.cluster.id

    async def http(self, method: str, url: str, body: Any = None) -> tuple[int, Any]:
        pool = HTTPConnectionPool(reactor, persistent=False)
        self.addCleanup(pool.closeCachedConnections)
        client = HTTPClient(Agent(reactor, pool=pool))
        code, parsed, _ = await json_request(client, method, url, body)
        return code, parsed

    async def existing_queues(self, channel_id: str) -> list[str]:
        queues = topology.owned_queues(channel_id, with_status=True)
        return [q for q in queues if await queue_exists(reactor, self.settings, q)]

    async def no_queues_left(self, channel_id: str) -> None:
        """Within a pass or two every process has dropped the deleted
        channel and none of its queues is left (or declared again)."""

        async def gone() -> bool:
            return not await self.existing_queues(channel_id)

        await poll_until(gone, timeout=5, interval=0.2)
        await task.deferLater(reactor, 4 * INTERVAL, lambda: None)
        self.assertEqual(await self.existing_queues(channel_id), [])


class ClusterTests(ClusterCase):
    async def test_one_transport_each_and_changes_through_any_process(self) -> None:
        a, b = await self.start(), await self.start()
        apis = [a, b]
        channels = [await self.create(a, TELNET) for _ in range(4)]
        await wait_until(
            lambda: (
                self.placed_once(apis, channels)
                and self.spread(apis, channels) == [2, 2]
            ),
            timeout=10,
        )
        # One owned by a, changed through b: a runs the change.
        cid = next(c for c in channels if self.runners(apis, c) == [a])
        before = a.transport(cid)
        start = time.monotonic()
        code, body, _ = await b.request(
            "POST",
            f"/channels/{cid}",
            {"config": {"twisted_endpoint": "tcp:0", "to_addr": "new"}},
        )
        self.assertEqual(code, 200, body)
        self.assertEqual(body["result"]["config"]["to_addr"], "new")
        await wait_until(lambda: a.transport(cid) is not before, timeout=1)
        self.assertLess(time.monotonic() - start, 1.5)
        self.assertEqual(a.transport(cid).config.to_addr, "new")
        self.assertIsNone(b.transport(cid))
        # The same answer through either process, owner included.
        _, via_a, _ = await a.request("GET", f"/channels/{cid}")
        _, via_b, _ = await b.request("GET", f"/channels/{cid}")
        self.assertEqual(via_a, via_b)
        owner = via_a["result"]["status"]["owner"]
        self.assertEqual(owner["process"], self.process_id(a))
        self.assertIsInstance(owner["token"], int)
        # Restart through b restarts it in a.
        before = a.transport(cid)
        code, _, _ = await b.request("POST", f"/channels/{cid}/restart")
        self.assertEqual(code, 200)
        await wait_until(lambda: a.transport(cid) is not before, timeout=1)
        self.assertEqual(self.runners(apis, cid), [a])
        # An error in the owner comes back as the owner's answer.
        code, body, _ = await b.request(
            "POST", f"/channels/{cid}", {"config": {"twisted_endpoint": 42}}
        )
        self.assertEqual(code, 400, body)
        # Delete through b stops it in a.
        code, _, _ = await b.request("DELETE", f"/channels/{cid}")
        self.assertEqual(code, 200)
        await wait_until(lambda: a.transport(cid) is None, timeout=1)
        for api in apis:
            code, _, _ = await api.request("GET", f"/channels/{cid}")
            self.assertEqual(code, 404)
        await self.no_queues_left(cid)
        # Every process lists both processes and what each holds.
        _, listed, _ = await b.request("GET", "/processes/")
        processes = {p["id"]: p for p in listed["result"]}
        self.assertEqual(set(processes), {self.process_id(a), self.process_id(b)})
        held = {c for p in processes.values() for c in p["channels"]}
        self.assertLessEqual(held, set(channels))

    async def test_clean_stop_hands_over_within_two_seconds(self) -> None:
        a, b = await self.start(), await self.start()
        apis = [a, b]
        channels = [await self.create(a, TELNET) for _ in range(4)]
        await wait_until(lambda: self.spread(apis, channels) == [2, 2], timeout=10)
        start = time.monotonic()
        await a.stop()
        await wait_until(
            lambda: (
                self.runners([b], channels[0]) == [b]
                and all(b.transport(cid) is not None for cid in channels)
            ),
            timeout=2,
        )
        self.assertLess(time.monotonic() - start, 2.0)
        _, listed, _ = await b.request("GET", "/processes/")
        self.assertEqual([p["id"] for p in listed["result"]], [self.process_id(b)])

    async def test_a_dead_owner_loses_its_channels_after_the_lease(self) -> None:
        a, b = await self.start(), await self.start()
        apis = [a, b]
        channels = [await self.create(a, TELNET) for _ in range(4)]
        await wait_until(lambda: self.spread(apis, channels) == [2, 2], timeout=10)
        lost = [cid for cid in channels if self.runners(apis, cid) == [a]]
        # a "dies": no more renewals, heartbeats or control; transports gone;
        # nothing released.
        assert a.junebug is not None
        cluster = a.junebug.cluster
        cluster.reconciler.stop()
        cluster.leases.stop()
        cluster.membership.left = True
        await a.junebug.control.stop()
        for cid in lost:
            await a.junebug.channels.give_up(cid)
        start = time.monotonic()
        _, body, _ = await b.request("GET", f"/channels/{lost[0]}")
        self.assertEqual(
            body["result"]["status"]["owner"]["process"], self.process_id(a)
        )
        await wait_until(
            lambda: all(b.transport(cid) is not None for cid in lost),
            timeout=LEASE + 3,
        )
        self.assertGreater(time.monotonic() - start, LEASE - 1.5)
        _, body, _ = await b.request("GET", f"/channels/{lost[0]}")
        self.assertEqual(
            body["result"]["status"]["owner"]["process"], self.process_id(b)
        )

    async def test_three_processes_thirty_channels_then_a_fourth(self) -> None:
        apis = [await self.start() for _ in range(3)]
        channels = [
            await self.create(apis[0], {"type": "fake", "config": {}})
            for _ in range(30)
        ]
        await wait_until(
            lambda: (
                self.placed_once(apis, channels)
                and max(self.spread(apis, channels)) <= 11
                and min(self.spread(apis, channels)) >= 9
            ),
            timeout=15,
        )
        apis.append(await self.start())
        await wait_until(
            lambda: (
                self.placed_once(apis, channels)
                and max(self.spread(apis, channels)) <= 8
                and min(self.spread(apis, channels)) >= 6
            ),
            timeout=15,
        )
        # Deleted through any of them: no channel runs, no queue is left.
        for n, cid in enumerate(channels):
            code, _, _ = await apis[n % 4].request("DELETE", f"/channels/{cid}")
            self.assertEqual(code, 200)
        await wait_until(
            lambda: all(api.junebug.channels.running_ids() == [] for api in apis),  # type: ignore[union-attr]
            timeout=5,
        )
        for cid in channels[:10]:
            await self.no_queues_left(cid)

    async def test_router_changes_reach_every_process(self) -> None:
        """Every process runs every router; a change through one reaches the
        others within a pass."""
        a, b = await self.start(), await self.start()
        cid = await self.create(a, {"type": "fake", "config": {}})
        code, body, _ = await a.request(
            "POST", "/routers/", {"type": "from_address", "config": {"channel": cid}}
        )
        self.assertEqual(code, 201, body)
        rid = body["result"]["id"]

        def router(api: ApiDriver) -> Any:
            assert api.junebug is not None
            return api.junebug.routers.running(rid)

        await wait_until(lambda: router(b) is not None, timeout=1.5)
        code, body, _ = await b.request(
            "POST",
            f"/routers/{rid}/destinations/",
            {"config": {"default": True}},
        )
        self.assertEqual(code, 201, body)
        await wait_until(
            lambda: (
                (running := router(a)) is not None and len(running.destinations) == 1
            ),
            timeout=1.5,
        )
        code, _, _ = await a.request("DELETE", f"/routers/{rid}")
        self.assertEqual(code, 200)
        await wait_until(lambda: router(b) is None, timeout=1.5)

    async def test_an_owner_that_does_not_answer_is_503(self) -> None:
        a = await self.start()
        b = await self.start(control_timeout=1)
        cid = await self.create(a, TELNET)
        assert a.junebug is not None
        await a.junebug.control.stop()  # alive, but deaf to requests
        await wait_until(
            lambda: (
                b.junebug is not None and b.junebug.channels.running(cid) is not None
            ),
            timeout=5,
        )
        start = time.monotonic()
        code, body, _ = await b.request("POST", f"/channels/{cid}/restart")
        self.assertEqual(code, 503, body)
        self.assertEqual(body["description"], "owner unavailable")
        self.assertLess(time.monotonic() - start, 3)
        self.assertIsNotNone(a.transport(cid))

    async def jb_process(self) -> JbProcess:
        jb = JbProcess(
            reactor,
            gateway_flags(self.redis, self.settings.vhost, LEASE, INTERVAL),
            free_port(),
        )
        await jb.start()
        self.addCleanup(jb.stop)
        return jb

    async def jb_telnet_channel(self, jb: JbProcess) -> tuple[str, int]:
        """A telnet channel created through ``jb`` (so it runs there)."""
        telnet_port = free_port()
        endpoint = f"tcp:{telnet_port}:interface=127.0.0.1"
        code, created = await self.http(
            "POST",
            f"{jb.base}/channels/",
            {
                "type": "telnet",
                "config": {"twisted_endpoint": endpoint},
            },
        )
        self.assertEqual(code, 201, created)
        cid: str = created["result"]["id"]
        return cid, telnet_port

    async def test_a_sigkilled_jb_loses_its_channel_to_another(self) -> None:
        """A real ``jb`` runs a telnet channel on a fixed port; SIGKILLed,
        the in-process Junebug binds that port within the lease and a bit."""
        jb = await self.jb_process()
        cid, telnet_port = await self.jb_telnet_channel(jb)
        b = await self.start()
        await wait_until(
            lambda: (
                b.junebug is not None and b.junebug.channels.running(cid) is not None
            ),
            timeout=5,
        )
        self.assertIsNone(b.transport(cid))  # the port is jb's
        await jb.kill()
        start = time.monotonic()
        await wait_until(lambda: b.transport(cid) is not None, timeout=LEASE + 5)
        self.assertLess(time.monotonic() - start, LEASE + 5)
        client = await connect_line_client(reactor, telnet_port)
        client.transport.loseConnection()

    async def test_a_sigtermed_jb_hands_its_channel_over_at_once(self) -> None:
        jb = await self.jb_process()
        cid, telnet_port = await self.jb_telnet_channel(jb)
        b = await self.start()
        await wait_until(
            lambda: (
                b.junebug is not None and b.junebug.channels.running(cid) is not None
            ),
            timeout=5,
        )
        self.assertIsNone(b.transport(cid))
        jb.send_signal(signal.SIGTERM)
        waited = time.monotonic()
        await wait_until(lambda: b.transport(cid) is not None, timeout=LEASE + 5)
        # The gap: from the moment jb let go (after its drain) to b's start.
        self.assertLess(time.monotonic() - waited, 2.0)
        self.assertEqual(await jb.exited(), 0)
        client = await connect_line_client(reactor, telnet_port)
        client.transport.loseConnection()


class ClusterScaleTests(ClusterCase):
    """A thousand cheap channels over two processes: each placed once, each
    serving MT, all deleted without a queue left."""

    # 1,000 channels took about 100 s alone on this machine's 2 cores, and
    # 120 s beside the suite's other workers, where RabbitMQ 3.10 once
    # answered a queue.delete with "home node ... of durable queue ... is
    # down or inaccessible" (a queue process overloaded, 1 run in 3).  So
    # the suite runs 300; JUNEBUG_SCALE_CHANNELS=1000 runs the issue's
    # figure (alone).  The timeouts leave room for either.
    timeout = 600

    @pytest.mark.timeout(600)
    async def test_a_thousand_channels_over_two_processes(self) -> None:
        count = int(os.environ.get("JUNEBUG_SCALE_CHANNELS", "300"))
        # Longer lease and control timeout than the other tests: a reactor
        # this busy (two Junebugs and the client in one process, beside
        # the other workers) can be late with renewals and answers, and
        # this test is about scale, not failover.
        cluster = {
            "lease_seconds": 20.0,
            "reconcile_interval": 1.0,
            "control_timeout": 60,
        }
        a, b = await self.start(**cluster), await self.start(**cluster)
        apis = [a, b]
        limit = DeferredSemaphore(10)  # as ten API clients at once would
        timings: dict[str, float] = {}
        start = last = time.monotonic()

        def lap(name: str) -> None:
            nonlocal last
            now = time.monotonic()
            timings[name] = round(now - last, 1)
            last = now

        async def create(n: int) -> str:
            return await self.create(
                apis[n % 2],
                {"type": "fake", "mo_url": "http://127.0.0.1:9/mo", "config": {}},
            )

        channels: list[str] = await gatherResults(
            [limit.run(create, n) for n in range(count)]
        )
        lap("create")
        half = count // 2
        await wait_until(
            lambda: (
                self.placed_once(apis, channels)
                and self.spread(apis, channels) == [half, count - half]
            ),
            timeout=30,
        )
        lap("placed")

        async def send(n: int) -> None:
            code, body, _ = await apis[n % 2].request(
                "POST",
                f"/channels/{channels[n]}/messages/",
                {"to": "+27820000000", "content": f"mt {n}"},
            )
            self.assertEqual(code, 201, body)

        await gatherResults([limit.run(send, n) for n in range(count)])

        def served() -> bool:
            return all(
                len(runner.transport(cid).outbound) == 1
                for cid in channels
                for runner in self.runners(apis, cid)
            )

        await wait_until(served, timeout=30)
        lap("mt")

        async def delete(n: int) -> None:
            code, body, _ = await apis[n % 2].request(
                "DELETE", f"/channels/{channels[n]}"
            )
            self.assertEqual(code, 200, body)

        await gatherResults([limit.run(delete, n) for n in range(count)])
        await wait_until(
            lambda: all(api.junebug.channels.running_ids() == [] for api in apis),  # type: ignore[union-attr]
            timeout=10,
        )
        lap("delete")
        # Two more passes in each process declare nothing of theirs again.
        for _ in range(2):
            for api in apis:
                await api.junebug.cluster.reconciler.reconcile()  # type: ignore[union-attr]
        ids = set(channels)
        left = [
            name
            for name in await list_queue_names(reactor, self.settings)
            if name.split(".", 1)[0] in ids
        ]
        self.assertEqual(left, [])
        timings["total"] = round(time.monotonic() - start, 1)
        # The figures for docs/cluster.rst (never asserted: the machine
        # is shared).
        sys.stderr.write(f"\n{count} channels over two processes: {timings}\n")
