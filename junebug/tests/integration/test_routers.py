"""A from_address router over real sockets: ``jb`` as a subprocess against the
real Redis and RabbitMQ of this machine (own key prefix and vhost).

The channel is a ``telnet_addr`` channel: each TCP client says which
``to_addr`` (the number or code it "dials") and ``from_addr`` it uses, so one
channel carries messages for several destinations.  A local HTTP server is
every destination's ``mo_url`` and the ``event_url``.
"""

from __future__ import annotations

import json
import tempfile
from typing import Any

from treq.client import HTTPClient
from twisted.internet import reactor
from twisted.trial.unittest import TestCase
from twisted.web.client import Agent, HTTPConnectionPool

from junebug.testing.http_sink import HttpSink, Received
from junebug.testing.rabbitmq import rabbitmq_test_settings
from junebug.testing.redis import RedisFixture, start_redis_fixture
from junebug.testing.telnet_client import LineClient, connect_line_client
from junebug.tests.support.process import JbProcess, free_port

CODE_ONE = "*120*1#"
CODE_TWO = "*120*2#"
CODE_OTHER = "*999#"


class Http:
    def __init__(self, base: str) -> None:
        self.base = base
        self.pool = HTTPConnectionPool(reactor, persistent=False)
        self.client = HTTPClient(Agent(reactor, pool=self.pool))

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        response = await self.client.request(method, self.base + path, data=data)
        return response.code, json.loads(await response.content())


class RouterIntegrationTests(TestCase):
    async def start_jb(self) -> JbProcess:
        jb = JbProcess(reactor, self.args, self.port)
        await jb.start()
        self.addCleanup(jb.stop)
        return jb

    async def user(self, to_addr: str, from_addr: str) -> LineClient:
        """A telnet user dialling ``to_addr``; its ``new`` MO is sent."""
        client = await connect_line_client(reactor, self.telnet_port)
        self.addCleanup(client.close)
        self.assertEqual(await client.next_line(reactor), 'Please provide "to_addr":')
        client.say(to_addr)
        self.assertEqual(await client.next_line(reactor), 'Please provide "from_addr":')
        client.say(from_addr)
        self.assertIn("Sending all messages to", await client.next_line(reactor))
        return client

    async def mo(self) -> Received:
        """The next POST to the sink, skipping session closes (clients that
        disconnect when ``jb`` stops send those, in no particular order)."""
        while True:
            received = await self.sink.next()
            body = received.body if isinstance(received.body, dict) else {}
            data = body.get("channel_data") or {}
            if data.get("session_event") != "close":
                return received

    async def setUp(self) -> None:  # type: ignore[override]
        self.sink = HttpSink(reactor)
        self.sink_base = await self.sink.start()
        self.addCleanup(self.sink.stop)
        self.redis: RedisFixture = await start_redis_fixture(self, reactor)
        self.args = [
            "--redis-key-prefix",
            self.redis.prefix,
            "--amqp-vhost",
            rabbitmq_test_settings().vhost,
            "--logging-path",
            tempfile.mkdtemp(prefix="jb-logs-"),
        ]
        self.port = free_port()
        self.telnet_port = free_port()
        self.jb = await self.start_jb()
        self.http = Http(self.jb.base)
        self.addCleanup(self.http.pool.closeCachedConnections)

    async def test_three_destinations_restart_and_changes(self) -> None:
        http, base = self.http, self.sink_base
        code, body = await http.call(
            "POST",
            "/channels/",
            {
                "type": "telnet_addr",
                "config": {
                    "twisted_endpoint": f"tcp:{self.telnet_port}:interface=127.0.0.1"
                },
            },
        )
        self.assertEqual(code, 201, body)
        cid = body["result"]["id"]
        code, body = await http.call(
            "POST",
            "/routers/",
            {"type": "from_address", "label": "USSD", "config": {"channel": cid}},
        )
        self.assertEqual(code, 201, body)
        rid = body["result"]["id"]
        dests = f"/routers/{rid}/destinations/"
        ids = {}
        for name, config, extra in [
            ("one", {"regular_expression": r"^\*120\*1#$"}, {"mo_url_token": "t1"}),
            ("two", {"regular_expression": r"^\*120\*2#$"}, {}),
            ("default", {"default": True}, {}),
        ]:
            code, body = await http.call(
                "POST",
                dests,
                {"label": name, "config": config, "mo_url": f"{base}/{name}", **extra},
            )
            self.assertEqual(code, 201, body)
            ids[name] = body["result"]["id"]

        # MO for each destination lands at its mo_url.
        alice = await self.user(CODE_ONE, "alice")
        new = await self.mo()
        self.assertEqual(new.path, "/one")
        self.assertEqual(new.headers["authorization"], "Token t1")
        self.assertEqual(new.body["to"], CODE_ONE)
        self.assertEqual(new.body["from"], "alice")
        self.assertEqual(new.body["channel_id"], cid)
        self.assertEqual(new.body["channel_data"], {"session_event": "new"})
        await self.user(CODE_TWO, "bob")
        self.assertEqual((await self.mo()).path, "/two")
        await self.user(CODE_OTHER, "carol")
        self.assertEqual((await self.mo()).path, "/default")
        alice.say("menu 1")
        mo = await self.mo()
        self.assertEqual((mo.path, mo.body["content"]), ("/one", "menu 1"))

        # A reply through the destination reaches the user; its event the
        # event_url and the destination's message status.
        code, body = await http.call(
            "POST",
            f"{dests}{ids['one']}/messages/",
            {
                "reply_to": mo.body["message_id"],
                "content": "welcome",
                "event_url": f"{base}/events",
                "event_auth_token": "evtok",
            },
        )
        self.assertEqual((code, body["description"]), (201, "message submitted"))
        mid = body["result"]["message_id"]
        self.assertEqual(body["result"]["to"], "alice")
        self.assertEqual(await alice.next_line(reactor), "welcome")
        event = await self.mo()
        self.assertEqual(event.path, "/events")
        self.assertEqual(event.headers["authorization"], "Token evtok")
        self.assertEqual(event.body["event_type"], "submitted")
        self.assertEqual(event.body["message_id"], mid)
        self.assertEqual(event.body["channel_id"], ids["one"])
        code, body = await http.call("GET", f"{dests}{ids['one']}/messages/{mid}")
        self.assertEqual(body["result"]["last_event_type"], "submitted")

        # The channel's own messages endpoint refuses: the router owns it.
        code, body = await http.call(
            "POST", f"/channels/{cid}/messages/", {"to": "alice", "content": "x"}
        )
        self.assertEqual(code, 400)

        # PATCH a destination: the new mo_url is used, the rest kept.
        code, body = await http.call(
            "PATCH", f"{dests}{ids['two']}", {"mo_url": f"{base}/two-b"}
        )
        self.assertEqual((code, body["description"]), (200, "destination updated"))
        self.assertEqual(body["result"]["label"], "two")
        await self.user(CODE_TWO, "bob2")
        self.assertEqual((await self.mo()).path, "/two-b")

        # PUT a destination: replaced wholesale (label gone), new regex used.
        code, body = await http.call(
            "PUT",
            f"{dests}{ids['two']}",
            {"config": {"regular_expression": r"^\*999"}, "mo_url": f"{base}/two-c"},
        )
        self.assertEqual(code, 200, body)
        self.assertNotIn("label", body["result"])
        await self.user(CODE_OTHER, "dave")
        self.assertEqual((await self.mo()).path, "/two-c")

        # PUT and PATCH the router itself.
        code, body = await http.call(
            "PUT",
            f"/routers/{rid}",
            {"type": "from_address", "config": {"channel": cid}},
        )
        self.assertEqual(code, 200, body)
        self.assertNotIn("label", body["result"])
        code, body = await http.call("PATCH", f"/routers/{rid}", {"label": "again"})
        self.assertEqual(body["result"]["config"], {"channel": cid})

        # DELETE a destination: what it matched now goes to the default.
        code, body = await http.call("DELETE", f"{dests}{ids['one']}")
        self.assertEqual((code, body["result"]), (200, {}))
        await self.user(CODE_ONE, "erin")
        self.assertEqual((await self.mo()).path, "/default")

        # The router survives a restart of jb, and routes again.
        await self.jb.stop()
        self.jb = await self.start_jb()
        code, body = await http.call("GET", "/routers/")
        self.assertEqual(body["result"], [rid])
        code, body = await http.call("GET", dests)
        self.assertEqual(sorted(body["result"]), sorted([ids["two"], ids["default"]]))
        code, body = await http.call("GET", f"/routers/{rid}")
        self.assertEqual(body["result"]["label"], "again")
        await self.user(CODE_OTHER, "frank")
        self.assertEqual((await self.mo()).path, "/two-c")
        code, body = await http.call("GET", f"/routers/{rid}/logs")
        self.assertEqual(code, 200)
        self.assertTrue(body["result"])

        # DELETE the router: its destinations' keys go too.
        code, body = await http.call("DELETE", f"/routers/{rid}")
        self.assertEqual((code, body["description"]), (200, "router deleted"))
        remaining = {
            key
            for key in await self.redis.raw_keys()
            if key.startswith(f"{self.redis.prefix}:routers")
        }
        self.assertEqual(remaining, set())
        code, body = await http.call("GET", f"{dests}{ids['two']}")
        self.assertEqual(code, 404)
