"""RapidPro's Junebug channel end to end: courier ↔ ``jb message-api`` ↔ RabbitMQ ↔ ``jb``.

Everything is real except RapidPro itself: ``jb`` (channels) and
``jb message-api`` run as subprocesses against this machine's RabbitMQ (a
throw-away vhost) and Redis (a unique key prefix, also holding the message
API's state cache).  A ``telnet_addr`` channel whose ``amqp_queue`` is the
message API's ``connector_name`` carries the messages; a TCP client plays the
phone.  RapidPro's side is played by the doubles of
:mod:`junebug.tests.message_api.courier`: a server at ``/c/jn/<uuid>/inbound``
and ``/c/jn/<uuid>/event`` that refuses what courier's JN handler refuses, and
a sender that posts exactly what courier posts (Basic auth included).

MO:  phone → telnet channel → ``<connector>.inbound`` → message API → courier.
MT:  courier → message API → ``<connector>.outbound`` → channel → phone.
Events: channel → ``<connector>.event`` → message API → courier's event URL.
"""

from __future__ import annotations

import json
import tempfile
import uuid
from pathlib import Path
from typing import Any

import yaml
from treq.client import HTTPClient
from twisted.internet import reactor
from twisted.trial.unittest import TestCase
from twisted.web.client import Agent, HTTPConnectionPool

from junebug.testing.rabbitmq import rabbitmq_test_settings
from junebug.testing.redis import start_redis_fixture
from junebug.testing.telnet_client import LineClient, connect_line_client
from junebug.tests.message_api.courier import CourierSender, FakeCourier
from junebug.tests.message_api.process import MessageApiProcess
from junebug.tests.support.process import JbProcess, free_port

SECRET = "sesame"
PHONE = "+250788383383"
SHORTCODE = "2020"


class Http:
    def __init__(self) -> None:
        self.pool = HTTPConnectionPool(reactor, persistent=False)
        self.client = HTTPClient(Agent(reactor, pool=self.pool))

    async def call(
        self, method: str, url: str, body: Any = None, **kwargs: Any
    ) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        response = await self.client.request(method, url, data=data, **kwargs)
        return response.code, json.loads(await response.content())


class RapidProEndToEndTests(TestCase):
    timeout = 120

    async def start_everything(
        self,
    ) -> tuple[FakeCourier, CourierSender, LineClient, MessageApiProcess, str]:
        redis = await start_redis_fixture(self, reactor)
        amqp = rabbitmq_test_settings()
        connector = f"rapidpro-{uuid.uuid4().hex[:8]}"
        workdir = Path(tempfile.mkdtemp(prefix="jb-rapidpro-"))

        courier = FakeCourier(reactor, secret=SECRET)
        await courier.start()
        self.addCleanup(courier.stop)
        self.addCleanup(lambda: self.assertEqual(courier.rejections(), []))

        jb = JbProcess(
            reactor,
            [
                "--redis-key-prefix",
                redis.prefix,
                "--amqp-vhost",
                amqp.vhost,
                "--logging-path",
                str(workdir / "logs"),
            ],
            free_port(),
        )
        await jb.start()
        self.addCleanup(jb.stop)

        api_port = free_port()
        config = {
            "connector_name": connector,
            "http_bind": f"127.0.0.1:{api_port}",
            "mo_message_url": courier.inbound_url,
            "mo_message_url_auth_token": SECRET,
            "default_event_url": courier.event_url,
            "default_event_auth_token": SECRET,
            "base_url_path": "/channels/<channel_id>",
            "auth": {"username": "user1", "password": "pass1"},
            "state_cache_class": "redis",
            "state_cache_config": {
                "host": redis.address.host,
                "port": redis.address.port,
                "db": redis.address.db,
                "password": redis.address.password,
                "key_prefix": f"{redis.prefix}:message-api",
            },
            "amqp": {
                "hostname": amqp.host,
                "port": amqp.port,
                "vhost": amqp.vhost,
                "username": amqp.username,
                "password": amqp.password,
            },
        }
        config_file = workdir / "message-api.yaml"
        config_file.write_text(yaml.safe_dump(config), encoding="utf-8")
        api = MessageApiProcess(reactor, ["--config", str(config_file)], api_port)
        await api.start()
        self.addCleanup(api.stop)

        http = Http()
        self.addCleanup(http.pool.closeCachedConnections)
        telnet_port = free_port()
        code, body = await http.call(
            "POST",
            jb.base + "/channels/",
            {
                "type": "telnet_addr",
                "label": "RapidPro",
                "amqp_queue": connector,
                "config": {
                    "twisted_endpoint": f"tcp:{telnet_port}:interface=127.0.0.1"
                },
            },
        )
        self.assertEqual(code, 201, body)
        channel_id = body["result"]["id"]

        sender = CourierSender(
            reactor,
            send_url=f"{api.base}/channels/{channel_id}/messages/",
            username="user1",
            password="pass1",
            channel_uuid=courier.channel_uuid,
            address=SHORTCODE,
            callback_domain=courier.base.removeprefix("http://"),
            callback_scheme="http",
            secret=SECRET,
        )
        self.addCleanup(sender.close)

        phone = await connect_line_client(reactor, telnet_port)
        self.addCleanup(phone.close)
        self.assertEqual(await phone.next_line(reactor), 'Please provide "to_addr":')
        phone.say(SHORTCODE)
        self.assertEqual(await phone.next_line(reactor), 'Please provide "from_addr":')
        phone.say(PHONE)
        self.assertEqual(
            await phone.next_line(reactor),
            f"[Sending all messages to: {SHORTCODE} and from: {PHONE}]",
        )
        return courier, sender, phone, api, channel_id

    async def test_rapidpro_round_trip(self) -> None:
        """MO reaches RapidPro, RapidPro's sends reach the phone, events come back."""
        courier, sender, phone, _, _ = await self.start_everything()

        # The session start (no content) is accepted by courier as an empty text.
        new = await courier.next_message(timeout=20)
        self.assertEqual((new.urn, new.text), (f"tel:{PHONE}", ""))

        phone.say("hello world")
        incoming = await courier.next_message()
        self.assertEqual((incoming.urn, incoming.text), (f"tel:{PHONE}", "hello world"))
        self.assertEqual(incoming.payload["to"], SHORTCODE)
        request = courier.requests[-1]
        self.assertEqual(request.headers["authorization"], f"Token {SECRET}")
        self.assertEqual(request.headers["content-type"], "application/json")

        # RapidPro sends: wired with result.message_id, delivered, then sent.
        result = await sender.send("Simple Message", PHONE)
        self.assertEqual(result.status, "W", result)
        self.assertEqual(result.parts[0]["code"], 201)
        self.assertEqual(await phone.next_line(reactor), "Simple Message")
        status = await courier.next_status()
        self.assertEqual((status.external_id, status.status), (result.external_id, "S"))
        event_request = courier.requests[-1]
        self.assertEqual(event_request.headers["authorization"], f"Token {SECRET}")

        # A long text goes out in parts, each its own message.
        sender.max_length = 20
        text = "one two three four five six seven eight nine ten eleven"
        result = await sender.send(text, PHONE)
        self.assertEqual((result.status, len(result.parts)), ("W", 3))
        lines = [await phone.next_line(reactor) for _ in range(3)]
        self.assertEqual(" ".join(lines), text)
        statuses = [await courier.next_status() for _ in range(3)]
        self.assertEqual({s.status for s in statuses}, {"S"})
        self.assertIn(result.external_id, {s.external_id for s in statuses})
        sender.max_length = 1530

        # An address the channel does not know: nacked, so failed in RapidPro.
        result = await sender.send("nobody home", "+250700000000")
        self.assertEqual(result.status, "W")
        self.assertEqual(
            await phone.next_line(reactor), "UNKNOWN ADDR [+250700000000]: nobody home"
        )
        status = await courier.next_status()
        self.assertEqual((status.external_id, status.status), (result.external_id, "F"))
        self.assertEqual(
            status.payload["event_details"], {"reason": "Unknown address."}
        )

    async def test_send_needs_the_configured_credentials(self) -> None:
        """Courier's Basic auth is checked when ``auth`` is set: other
        credentials make its send errored (401) and nothing reaches the phone."""
        courier, sender, phone, _, _ = await self.start_everything()
        await courier.next_message(timeout=20)
        sender.password = "wrong"
        result = await sender.send("should not arrive", PHONE)
        self.assertEqual((result.status, result.parts[0]["code"]), ("E", 401))
        sender.password = "pass1"
        result = await sender.send("should arrive", PHONE)
        self.assertEqual(result.status, "W")
        self.assertEqual(await phone.next_line(reactor), "should arrive")

    async def test_events_without_event_url_use_the_default(self) -> None:
        """A message sent without event_url (not by courier) gets its events at
        default_event_url, with default_event_auth_token."""
        courier, _, phone, api, channel_id = await self.start_everything()
        await courier.next_message(timeout=20)
        http = Http()
        self.addCleanup(http.pool.closeCachedConnections)
        code, body = await http.call(
            "POST",
            f"{api.base}/channels/{channel_id}/messages",
            {"to": PHONE, "from": SHORTCODE, "content": "no event url"},
            auth=("user1", "pass1"),
        )
        self.assertEqual(code, 201, body)
        self.assertEqual(await phone.next_line(reactor), "no event url")
        status = await courier.next_status()
        self.assertEqual(
            (status.external_id, status.status), (body["result"]["message_id"], "S")
        )
        self.assertEqual(
            courier.requests[-1].headers["authorization"], f"Token {SECRET}"
        )


class MessageApiCommandTests(TestCase):
    async def test_bad_config_exits_2(self) -> None:
        """``jb message-api`` without its required options exits with code 2."""
        process = MessageApiProcess(reactor, [], free_port())
        with self.assertRaises(RuntimeError):
            await process.start()
        self.assertEqual(await process.exit_code(), 2)
        self.assertIn("connector_name", process.output)
