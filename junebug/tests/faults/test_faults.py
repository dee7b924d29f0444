"""Fault injection: nothing answered with 201 is lost.

A client sends a few thousand messages through a gateway of two ``jb``
processes (subprocesses on one Redis and RabbitMQ, requests alternating
between their APIs) to an SMPP channel bound to the node SMSC peer, while the
test restarts RabbitMQ (a private node it starts,
:mod:`junebug.tests.rabbitmq_node`, never the machine's shared one), kills and
restarts a persistent Redis, and SIGKILLs the ``jb`` that owns the channel
(its bind moves to the other once the lease runs out) and starts it again.  The client retries requests that fail during an outage, as a real
client would.  At the end every message that got a 201 must have reached the
SMSC and every one of them must have had its ``submitted`` and
``delivery_succeeded`` events posted to ``event_url``; the messages use the
five priorities in turn.  Duplicates (a message resubmitted after a crash)
are counted and reported, not failed.  The channel has a rate limit
(``JUNEBUG_FAULT_RATE_LIMIT`` submit_sm per second, 0 for none), so messages
also wait for budget in Redis while it is killed.

Also runnable as ``python -m bench faults`` (see :mod:`bench.faults`).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from collections import Counter
from typing import Any

import pytest
from treq.client import HTTPClient
from twisted.internet import reactor, task
from twisted.internet.defer import (
    CancelledError,
    DeferredSemaphore,
    ensureDeferred,
    gatherResults,
)
from twisted.trial.unittest import TestCase
from twisted.web.client import Agent, HTTPConnectionPool

from junebug.testing.http_sink import HttpSink
from junebug.tests.rabbitmq_node import PrivateRabbitMQ
from junebug.tests.support.process import JbProcess, free_port
from junebug.tests.support.redis_server import RedisServer
from junebug.tests.support.smsc import SmscPeer

MESSAGES = int(os.environ.get("JUNEBUG_FAULT_MESSAGES", "2000"))
CONCURRENCY = 8
#: The gateway's processes (``jb`` subprocesses on one Redis and RabbitMQ).
PROCESSES = int(os.environ.get("JUNEBUG_FAULT_PROCESSES", "2"))
RATE_LIMIT = int(os.environ.get("JUNEBUG_FAULT_RATE_LIMIT", "200"))


class FaultReport:
    def __init__(self) -> None:
        self.accepted: list[str] = []
        self.content_ids: dict[str, str] = {}
        self.retried_requests = 0
        #: The SIGKILLed jb was the channel's owner (found by its pid).
        self.killed_owner = False
        self.started = time.monotonic()

    def summary(
        self, submits: Counter[str], events: dict[str, Counter[str]]
    ) -> dict[str, Any]:
        accepted = set(self.accepted)
        return {
            "sent": MESSAGES,
            "accepted": len(accepted),
            "retried_requests": self.retried_requests,
            "lost_at_smsc": len(accepted - set(submits)),
            "duplicates_at_smsc": sum(n - 1 for n in submits.values() if n > 1),
            "lost_submitted_events": len(accepted - set(events["submitted"])),
            "lost_delivery_events": len(accepted - set(events["delivery_succeeded"])),
            "duplicate_events": sum(
                n - 1 for counter in events.values() for n in counter.values() if n > 1
            ),
            "processes": PROCESSES,
            "killed_owner": self.killed_owner,
            "seconds": round(time.monotonic() - self.started, 1),
        }


class FaultInjectionTests(TestCase):
    timeout = 900

    @pytest.mark.timeout(900)
    @pytest.mark.faults
    async def test_nothing_accepted_is_lost(self) -> None:
        """RabbitMQ restart, Redis kill -9 and jb SIGKILL lose no message."""
        peer = SmscPeer(reactor, "node", mode="dlr")
        await peer.start()
        self.addCleanup(peer.stop)
        redis = RedisServer(reactor)
        await redis.start()
        self.addCleanup(redis.stop)
        rabbitmq = PrivateRabbitMQ(reactor)
        self.addCleanup(rabbitmq.stop)
        await rabbitmq.start()
        sink = HttpSink(reactor)
        sink_base = await sink.start()
        self.addCleanup(sink.stop)
        events: dict[str, Counter[str]] = {
            "submitted": Counter(),
            "delivery_succeeded": Counter(),
        }

        async def collect() -> None:
            while True:
                try:
                    received = await sink.queue.get()
                except CancelledError:
                    return
                body = received.body or {}
                kind = body.get("event_type")
                if kind in events:
                    events[kind][body.get("message_id")] += 1

        collecting = ensureDeferred(collect())
        self.addCleanup(collecting.cancel)

        logs_dirs = [tempfile.mkdtemp(prefix="jb-faults-") for _ in range(PROCESSES)]
        jbs = [
            JbProcess(
                reactor,
                [
                    "--redis-port",
                    str(redis.port),
                    "--amqp-port",
                    str(rabbitmq.port),
                    "--logging-path",
                    logs_dir,
                ],
                free_port(),
            )
            for logs_dir in logs_dirs
        ]
        for jb in jbs:
            await jb.start()
            self.addCleanup(jb.stop)

        pool = HTTPConnectionPool(reactor, persistent=True)
        pool.maxPersistentPerHost = CONCURRENCY
        self.addCleanup(pool.closeCachedConnections)
        client = HTTPClient(Agent(reactor, pool=pool, connectTimeout=5))

        async def call(
            method: str, path: str, body: Any = None, via: int = 0
        ) -> tuple[int, Any]:
            data = None if body is None else json.dumps(body).encode()
            base = jbs[via % PROCESSES].base
            response = await client.request(method, base + path, data=data)
            return response.code, json.loads(await response.content())

        code, created = await call(
            "POST",
            "/channels/",
            {
                "type": "smpp",
                "mo_url": sink_base + "/mo",
                "rate_limit_count": RATE_LIMIT,
                "rate_limit_window": 1,
                "config": {
                    "twisted_endpoint": peer.endpoint,
                    "system_id": "esme1",
                    "password": "secret",
                    "initial_reconnect_delay": 0.2,
                    "window_size": 20,
                },
            },
        )
        self.assertEqual(code, 201, created)
        cid = created["result"]["id"]
        report = FaultReport()
        limit = DeferredSemaphore(CONCURRENCY)

        async def send(n: int) -> None:
            body = {
                "to": "27820000001",
                "from": "1234",
                "content": f"fault test {n}",
                "event_url": sink_base + "/ev",
                # Every priority queue in use (1 to 5), so none loses any.
                "priority": n % 5 + 1,
            }
            via = n  # alternate; a retry tries the other process
            while True:
                try:
                    code, answer = await call(
                        "POST", f"/channels/{cid}/messages/", body, via=via
                    )
                except Exception:
                    code, answer = 0, None
                if code == 201:
                    report.accepted.append(answer["result"]["message_id"])
                    report.content_ids[body["content"]] = answer["result"]["message_id"]
                    return
                report.retried_requests += 1
                via += 1
                await task.deferLater(reactor, 0.2, lambda: None)

        async def faults() -> None:
            async def at(fraction: float) -> None:
                while len(report.accepted) < MESSAGES * fraction:
                    await task.deferLater(reactor, 0.05, lambda: None)

            await at(0.25)
            await rabbitmq.restart_app()
            await at(0.5)
            await redis.restart()
            await at(0.75)
            owner = await owner_of_channel()
            report.killed_owner = owner is not None
            victim = owner if owner is not None else jbs[0]
            await victim.kill()
            await victim.start()

        async def owner_of_channel() -> JbProcess | None:
            for n, jb in enumerate(jbs):
                try:
                    code, body = await call("GET", f"/channels/{cid}", via=n)
                except Exception:
                    continue
                if code != 200:
                    continue
                pid = ((body["result"].get("status") or {}).get("owner") or {}).get(
                    "pid"
                )
                return next((jb for jb in jbs if jb.pid == pid), None)
            return None

        sending = gatherResults(
            [limit.run(lambda n=n: ensureDeferred(send(n))) for n in range(MESSAGES)]
        )
        await gatherResults([sending, ensureDeferred(faults())])

        accepted = set(report.accepted)

        def done() -> bool:
            return accepted <= set(events["delivery_succeeded"]) and accepted <= set(
                events["submitted"]
            )

        settled_at = time.monotonic()
        waited = 0.0
        while not done() and waited < 300:
            await task.deferLater(reactor, 0.2, lambda: None)
            waited += 0.2
        at_peer: Counter[str] = Counter(
            report.content_ids.get(submit["message"], "?")
            for submit in peer.submits
            if submit["status"] == 0
        )
        summary = report.summary(at_peer, events)
        summary["seconds_to_settle"] = round(time.monotonic() - settled_at, 1)
        lost = sorted(accepted - set(events["delivery_succeeded"]))
        if lost:
            summary["lost_ids"] = lost[:10]
            paths = [os.path.join(d, n) for d in logs_dirs for n in os.listdir(d)]
            for path in paths:
                with open(path, encoding="utf-8") as handle:
                    for line in handle:
                        if any(
                            word in line
                            for word in (
                                "unknown SMSC",
                                "Could not",
                                "retry",
                                "Gave up",
                                "rror",
                            )
                        ):
                            sys.stderr.write(line[:400])
            content = {v: k for k, v in report.content_ids.items()}
            for mid in lost[:10]:
                sys.stderr.write(f"LOST {mid} {content.get(mid)}\n")
                for submit in peer.submits:
                    if submit["message"] == content.get(mid):
                        sys.stderr.write(f"  at peer: {submit}\n")
        sys.stderr.write(f"\nfault injection: {json.dumps(summary)}\n")
        self.summary = summary
        self.assertEqual(summary["lost_at_smsc"], 0, summary)
        self.assertEqual(summary["lost_submitted_events"], 0, summary)
        self.assertEqual(summary["lost_delivery_events"], 0, summary)
