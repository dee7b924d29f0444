"""The documentation's "Getting started" walkthrough, over real sockets.

``jb`` runs as a subprocess against the real Redis and RabbitMQ of this machine
(its own key prefix and vhost), and again with ``--embedded``.  A real TCP
client plays the telnet user; a local HTTP server is the ``mo_url`` and the
``event_url``.
"""

from __future__ import annotations

import json
import os
import tempfile
import uuid
from typing import Any

from treq.client import HTTPClient
from twisted.internet import reactor, task
from twisted.trial.unittest import TestCase
from twisted.web.client import Agent, HTTPConnectionPool

from junebug.testing.http_sink import HttpSink
from junebug.testing.polling import wait_until
from junebug.testing.rabbitmq import rabbitmq_test_settings
from junebug.testing.redis import start_redis_fixture
from junebug.testing.telnet_client import connect_line_client
from junebug.tests.support.process import JbProcess, free_port


class Http:
    def __init__(self) -> None:
        self.pool = HTTPConnectionPool(reactor, persistent=False)
        self.client = HTTPClient(Agent(reactor, pool=self.pool))

    async def call(self, method: str, url: str, body: Any = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        response = await self.client.request(method, url, data=data)
        return response.code, json.loads(await response.content())


class GettingStartedMixin:
    """The walkthrough; subclasses choose real or embedded backends."""

    embedded = False

    async def backend_args(self) -> list[str]:
        if self.embedded:
            return ["--embedded"]
        redis = await start_redis_fixture(self, reactor)  # type: ignore[arg-type]
        return [
            "--redis-key-prefix",
            redis.prefix,
            "--amqp-vhost",
            rabbitmq_test_settings().vhost,
        ]

    async def start_jb(self, args: list[str]) -> JbProcess:
        jb = JbProcess(reactor, args, free_port())
        await jb.start()
        self.addCleanup(jb.stop)  # type: ignore[attr-defined]
        return jb

    async def test_walkthrough(self) -> None:
        """MO reaches mo_url, MT and the reply reach the user, status says submitted."""
        case: TestCase = self  # type: ignore[assignment]
        sink = HttpSink(reactor)
        sink_base = await sink.start()
        case.addCleanup(sink.stop)
        http = Http()
        case.addCleanup(http.pool.closeCachedConnections)
        logs = tempfile.mkdtemp(prefix="jb-logs-")
        jb = await self.start_jb([*(await self.backend_args()), "--logging-path", logs])

        telnet_port = free_port()
        code, body = await http.call(
            "POST",
            jb.base + "/channels/",
            {
                "type": "telnet",
                "label": "My First Channel",
                "mo_url": sink_base + "/mo",
                "config": {
                    "twisted_endpoint": f"tcp:{telnet_port}:interface=127.0.0.1"
                },
            },
        )
        case.assertEqual(code, 201, body)
        channel = body["result"]
        case.assertEqual(channel["status"]["status"], None)
        cid = channel["id"]

        client = await connect_line_client(reactor, telnet_port)
        case.addCleanup(client.close)
        new = await sink.next()
        case.assertEqual(new.path, "/mo")
        case.assertEqual(new.body["channel_data"], {"session_event": "new"})
        case.assertEqual(new.body["from"], client.address)
        case.assertEqual(new.body["to"], f"127.0.0.1:{telnet_port}")
        case.assertIsNone(new.body["content"])
        case.assertEqual(new.body["channel_id"], cid)

        code, body = await http.call(
            "POST",
            f"{jb.base}/channels/{cid}/messages/",
            {"to": client.address, "content": "hello", "event_url": sink_base + "/ev"},
        )
        case.assertEqual((code, body["description"]), (201, "message submitted"))
        message_id = body["result"]["message_id"]
        case.assertEqual(await client.next_line(reactor), "hello")
        event = await sink.next()
        case.assertEqual(event.path, "/ev")
        case.assertEqual(event.body["event_type"], "submitted")
        case.assertEqual(event.body["message_id"], message_id)

        code, body = await http.call(
            "GET", f"{jb.base}/channels/{cid}/messages/{message_id}"
        )
        case.assertEqual(code, 200)
        case.assertEqual(body["result"]["last_event_type"], "submitted")
        case.assertEqual(body["result"]["events"][0]["event_type"], "submitted")

        client.say("Hi there")
        mo = await sink.next()
        case.assertEqual(mo.body["content"], "Hi there")
        case.assertEqual(mo.body["channel_data"], {"session_event": "resume"})

        code, body = await http.call(
            "POST",
            f"{jb.base}/channels/{cid}/messages/",
            {"reply_to": mo.body["message_id"], "content": "hello again"},
        )
        case.assertEqual(code, 201, body)
        case.assertEqual(await client.next_line(reactor), "hello again")

        code, body = await http.call("GET", f"{jb.base}/channels/{cid}/logs")
        case.assertEqual(code, 200)
        case.assertTrue(body["result"], "the channel's log has entries")
        await client.close()
        close = await sink.next()
        case.assertEqual(close.body["channel_data"], {"session_event": "close"})


class GettingStartedRealBackendsTests(GettingStartedMixin, TestCase):
    embedded = False

    async def test_restart_keeps_channels_and_accepted_messages(self) -> None:
        """Channels survive a restart; MT accepted while the transport was down,
        or just before a SIGKILL, is delivered after jb starts again."""
        http = Http()
        self.addCleanup(http.pool.closeCachedConnections)
        args = [
            *(await self.backend_args()),
            "--channels",
            "recording:junebug.testing.transports.RecordingTransport",
            "--logging-path",
            tempfile.mkdtemp(prefix="jb-logs-"),
        ]
        workdir = tempfile.mkdtemp(prefix="jb-restart-")
        delivered = os.path.join(workdir, "delivered.jsonl")
        marker = os.path.join(workdir, "down")
        jb = await self.start_jb(args)
        code, body = await http.call(
            "POST",
            jb.base + "/channels/",
            {
                "type": "recording",
                "amqp_queue": f"q{uuid.uuid4().hex}",
                "config": {"path": delivered, "fail_if_exists": marker},
            },
        )
        self.assertEqual(code, 201, body)
        cid = body["result"]["id"]
        open(marker, "w").close()
        await jb.stop()

        jb = await self.start_jb(args)
        code, body = await http.call("GET", f"{jb.base}/channels/{cid}")
        self.assertEqual(code, 200)
        self.assertEqual(body["result"]["status"]["status"], "down")
        accepted = []
        for n in range(5):
            code, body = await http.call(
                "POST",
                f"{jb.base}/channels/{cid}/messages/",
                {"to": "+27820000000", "content": f"queued {n}"},
            )
            self.assertEqual(code, 201, body)
            accepted.append(body["result"]["message_id"])
        self.assertFalse(os.path.exists(delivered))
        await jb.kill()
        os.remove(marker)

        jb = await self.start_jb(args)
        code, body = await http.call("GET", jb.base + "/channels/")
        self.assertEqual(body["result"], [cid])

        def delivered_ids() -> set[str]:
            if not os.path.exists(delivered):
                return set()
            with open(delivered, encoding="utf-8") as handle:
                return {
                    json.loads(line)["message_id"] for line in handle if line.strip()
                }

        await wait_until(lambda: set(accepted) <= delivered_ids(), timeout=20)
        await task.deferLater(reactor, 0, lambda: None)


class GettingStartedEmbeddedTests(GettingStartedMixin, TestCase):
    embedded = True
