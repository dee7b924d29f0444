"""Graceful drain: on stop (SIGTERM for ``jb``) new requests answer 503 with
``Retry-After``, requests in flight finish within ``shutdown_timeout``, and a
second SIGTERM exits at once."""

from __future__ import annotations

import json
from typing import Any

from treq.testing import StubTreq
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase

from junebug.messages import Message
from junebug.service import Junebug, build
from junebug.shutdown_signal import FORCED_EXIT_STATUS, SigtermHandler
from junebug.tests.test_service import embedded_config


class HeldPublishes:
    """Stands in for the broker's publish: each waits until released."""

    def __init__(self, junebug: Junebug) -> None:
        self._publish = junebug.broker.publish
        self.held: list[Deferred[None]] = []

    async def publish(self, routing_key: str, message: Message, **kw: Any) -> None:
        waiting: Deferred[None] = Deferred()
        self.held.append(waiting)
        await waiting
        await self._publish(routing_key, message, **kw)

    def release(self) -> None:
        held, self.held = self.held, []
        for waiting in held:
            waiting.callback(None)


class DrainTests(TestCase):
    async def started(self, **config: Any) -> tuple[Clock, Junebug, StubTreq, str]:
        clock = Clock()
        junebug = build(clock, embedded_config(**config), listen=False)
        await junebug.start()
        self.addCleanup(junebug.stop)
        client = StubTreq(junebug.api.resource())
        response = await client.post(
            "http://jb/channels/",
            json.dumps({"type": "fake", "config": {}, "mo_url": "http://x/"}),
        )
        created = json.loads(await response.content())
        return clock, junebug, client, created["result"]["id"]

    def send(self, client: StubTreq, channel_id: str) -> Deferred[Any]:
        return client.post(
            f"http://jb/channels/{channel_id}/messages/",
            json.dumps({"to": "+27820000001", "content": "in flight"}),
        )

    async def test_drain_refuses_new_and_finishes_in_flight(self) -> None:
        """While draining, new requests get 503 + Retry-After; the send in
        flight still gets its 201, and only then do the parts stop."""
        _clock, junebug, client, cid = await self.started(shutdown_timeout=30)
        held = HeldPublishes(junebug)
        self.patch(junebug.broker, "publish", held.publish)
        sending = self.send(client, cid)
        self.assertEqual(len(held.held), 1)
        self.assertEqual(junebug.readiness.in_flight.count, 1)

        stopping = Deferred.fromCoroutine(junebug.stop())
        response = await client.get("http://jb/channels/")
        self.assertEqual(response.code, 503)
        self.assertEqual(response.headers.getRawHeaders(b"Retry-After"), [b"5"])
        body = json.loads(await response.content())
        self.assertEqual(body["description"], "junebug is stopping")
        self.assertEqual(
            body["result"]["errors"],
            [{"type": "NotReady", "message": "Junebug is stopping"}],
        )
        live = await client.get("http://jb/health/live")
        self.assertEqual(live.code, 200)
        ready = await client.get("http://jb/health/ready")
        self.assertEqual(ready.code, 503)
        self.assertFalse(stopping.called)
        self.assertIn("broker", junebug.stops.parts)

        held.release()
        client.flush()
        sent = await sending
        self.assertEqual(sent.code, 201)
        await stopping
        self.assertEqual(junebug.stops.parts, [])
        self.assertEqual(junebug.readiness.in_flight.count, 0)

    async def test_deadline_cuts_the_drain_off(self) -> None:
        """A request still in flight after shutdown_timeout does not hold the
        stop any longer."""
        clock, junebug, client, cid = await self.started(shutdown_timeout=10)
        held = HeldPublishes(junebug)
        self.patch(junebug.broker, "publish", held.publish)
        sending = self.send(client, cid)
        stopping = Deferred.fromCoroutine(junebug.stop())
        clock.advance(9.9)
        self.assertFalse(stopping.called)
        clock.advance(0.1)
        await stopping
        self.assertEqual(junebug.stops.parts, [])
        self.assertEqual(junebug.readiness.in_flight.count, 1)
        held.release()
        client.flush()
        response = await sending
        # The broker has gone: the late send is refused, not lost silently.
        self.assertEqual(response.code, 503)
        self.flushLoggedErrors()

    async def test_nothing_in_flight_stops_at_once(self) -> None:
        clock, junebug, _client, _cid = await self.started(shutdown_timeout=30)
        await junebug.stop()
        self.assertEqual(clock.getDelayedCalls(), [])


class FakeReactor:
    def __init__(self) -> None:
        self.stops = 0

    def callFromThread(self, f: Any, *args: Any) -> None:
        f(*args)

    def stop(self) -> None:
        self.stops += 1


class SigtermTests(TestCase):
    def test_first_drains_second_exits_at_once(self) -> None:
        """The first SIGTERM stops the reactor (the drain runs before it
        shuts down); the second exits at once with status 1."""
        reactor = FakeReactor()
        exits: list[int] = []
        handler = SigtermHandler(reactor, exits.append)
        handler(15)
        self.assertEqual((reactor.stops, exits), (1, []))
        handler(15)
        self.assertEqual((reactor.stops, exits), (1, [FORCED_EXIT_STATUS]))
        self.assertEqual(FORCED_EXIT_STATUS, 1)
