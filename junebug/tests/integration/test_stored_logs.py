"""Channel logs in Redis: readable through another process; Redis going away
never gets in the way of the code that logs."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from twisted.internet import reactor
from twisted.logger import LogPublisher
from twisted.trial.unittest import TestCase

from junebug.amqp import topology
from junebug.channel_logs import LogFileRouter
from junebug.messages import user_message
from junebug.service import Junebug
from junebug.testing.api import ApiDriver
from junebug.testing.polling import poll_until, wait_until
from junebug.testing.rabbitmq import rabbitmq_test_settings
from junebug.testing.redis import start_redis_fixture
from junebug.tests.support.redis_server import RedisServer


def amqp_layer() -> dict[str, Any]:
    settings = rabbitmq_test_settings()
    return {
        "hostname": settings.host,
        "port": settings.port,
        "vhost": settings.vhost,
        "username": settings.username,
        "password": settings.password,
    }


def isolated(junebug: Junebug) -> None:
    """Give a Junebug its own log publisher, as another process has: it sees
    none of the other Junebug's log events, so what it serves came from Redis."""
    config = junebug.config
    junebug.logs = LogFileRouter(
        config.logging_path,
        config.log_rotate_size,
        config.max_log_files,
        publisher=LogPublisher(),
        store=junebug.stored_logs,
    )


class TwoProcessesTests(TestCase):
    timeout = 60

    async def start(self, redis: dict[str, Any], *, own_logs: bool) -> ApiDriver:
        driver = ApiDriver(reactor)
        self.addCleanup(driver.stop)
        junebug = driver.build(
            embedded=False,
            redis=redis,
            amqp=amqp_layer(),
            logging_path=tempfile.mkdtemp(prefix="junebug-logs-"),
        )
        if own_logs:
            isolated(junebug)
        await junebug.start()
        return driver

    async def test_log_line_of_one_readable_through_the_other(self) -> None:
        """A's channel logs; B (same Redis prefix, none of A's log events)
        serves the line through its logs route, and its message log too."""
        fixture = await start_redis_fixture(self, reactor)
        redis = {
            "host": fixture.address.host,
            "port": fixture.address.port,
            "db": fixture.address.db,
            "password": fixture.address.password,
            "key_prefix": fixture.prefix,
        }
        a = await self.start(redis, own_logs=False)
        b = await self.start(redis, own_logs=True)
        code, created, _ = await a.request(
            "POST",
            "/channels/",
            {"type": "fake", "config": {}, "amqp_queue": "elsewhere"},
        )
        self.assertEqual(code, 201, created)
        cid = created["result"]["id"]
        code, sent, _ = await a.request(
            "POST", f"/channels/{cid}/messages/", {"to": "+2782", "content": "hi"}
        )
        self.assertEqual(code, 201, sent)
        message_id = sent["result"]["message_id"]
        channel = a.junebug.channels.running(cid) if a.junebug else None
        assert channel is not None
        channel.log.info("Only A logged this about {message_id}", message_id=message_id)

        async def served_by_b() -> list[str]:
            code, body, _ = await b.request("GET", f"/channels/{cid}/logs")
            self.assertEqual(code, 200, body)
            return [entry["message"] for entry in body["result"]]

        lines = await poll_until(lambda: _matching(served_by_b(), "Only A logged this"))
        self.assertEqual(lines[0], f"Only A logged this about {message_id}")
        # B never saw the event: its own log file has no such line.
        assert b.junebug is not None
        directory = b.junebug.config.logging_path
        self.assertFalse(
            any("Only A logged" in path.read_text() for path in _files(directory))
        )
        code, body, _ = await b.request(
            "GET", f"/channels/{cid}/messages/{message_id}/logs"
        )
        self.assertEqual(code, 200, body)
        self.assertIn(
            f"Only A logged this about {message_id}",
            [entry["message"] for entry in body["result"]],
        )
        # Deleting the channel (through B) deletes its stored log list.
        code, _, _ = await b.request("DELETE", f"/channels/{cid}")
        self.assertEqual(code, 200)
        self.assertEqual(await fixture.raw("EXISTS", f"{fixture.prefix}:{cid}:logs"), 0)


async def _matching(lines: Any, text: str) -> list[str] | None:
    got: list[str] = await lines
    return got if any(text in line for line in got) else None


def _files(directory: str) -> list[Path]:
    return [p for p in Path(directory).iterdir() if p.is_file()]


class RedisAwayTests(TestCase):
    timeout = 90

    async def test_logging_while_redis_is_away(self) -> None:
        """With Redis down the channel logs without raising and its MT waits
        (nothing lost); once Redis is back the MT is sent and its logs are
        stored again."""
        server = RedisServer(reactor)
        await server.start()
        self.addCleanup(server.stop)
        api = ApiDriver(reactor)
        self.addCleanup(api.stop)
        junebug = await api.start(
            embedded=False,
            redis={"host": "127.0.0.1", "port": server.port, "key_prefix": "away"},
            amqp=amqp_layer(),
            logging_path=tempfile.mkdtemp(prefix="junebug-logs-"),
        )
        code, created, _ = await api.request(
            "POST",
            "/channels/",
            {"type": "fake", "config": {}, "amqp_queue": "elsewhere"},
        )
        self.assertEqual(code, 201, created)
        cid = created["result"]["id"]
        channel = junebug.channels.running(cid)
        assert channel is not None
        transport = api.transport(cid)

        await server.stop()
        for i in range(50):
            channel.log.info("Logged while Redis is away {i}", i=i, message_id="m")
        mt = user_message(
            to_addr="+2782", from_addr="1", content="still sent", transport_name=cid
        )
        await junebug.broker.publish(topology.outbound(cid), mt)
        # The MT waits for Redis (its fate is claimed there before it is
        # sent, so a cancel cannot race it) and is sent once Redis is back.
        await server.start()
        await wait_until(lambda: transport.outbound, timeout=20)
        self.assertEqual(transport.outbound[-1]["content"], "still sent")
        channel.log.info("Logged once Redis is back")

        async def stored() -> list[str] | None:
            code, body, _ = await api.request("GET", f"/channels/{cid}/logs")
            if code != 200:
                return None
            lines = [entry["message"] for entry in body["result"]]
            return lines if "Logged once Redis is back" in lines else None

        lines = await poll_until(stored, timeout=30, interval=0.2)
        dropped = junebug.metrics.stored_log_entries_dropped._value.get()
        kept = sum("while Redis is away" in line for line in lines)
        # Each entry logged while away was stored late or counted as dropped.
        self.assertGreaterEqual(kept + dropped, 50)
