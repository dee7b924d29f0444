"""Priorities need no queue migration: messages waiting in a channel's
``<cid>.outbound`` (declared durable without arguments, as the original
Junebug and vumi applications declare it) are sent, as priority 1, by a
Junebug with priorities, on this machine's real RabbitMQ and Redis."""

from __future__ import annotations

import tempfile

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from junebug.amqp import topology
from junebug.messages import to_json, user_message
from junebug.testing.api import ApiDriver
from junebug.testing.polling import wait_until
from junebug.testing.rabbitmq import publish_raw, rabbitmq_test_settings
from junebug.tests.support.real_backends import real_backends


class UpgradeTests(TestCase):
    timeout = 60

    async def test_old_outbound_queue_is_served_as_priority_1(self) -> None:
        """With Junebug stopped, an application leaves messages in
        ``<cid>.outbound``; the next Junebug sends every one of them, and
        a priority-5 message sent next is served from its own queue."""
        backends = await real_backends(self, reactor)
        backends["logging_path"] = tempfile.mkdtemp(prefix="junebug-logs-")
        first = ApiDriver(reactor)
        self.addCleanup(first.stop)
        await first.start(**backends)
        code, created, _ = await first.request(
            "POST",
            "/channels/",
            {"type": "fake", "config": {}, "mo_url": "http://127.0.0.1:9/mo"},
        )
        self.assertEqual(code, 201, created)
        cid = created["result"]["id"]
        await first.stop()
        settings = rabbitmq_test_settings()
        for i in range(3):
            message = user_message(
                to_addr="+1", from_addr="+2", content=f"old {i}", transport_name=cid
            )
            await publish_raw(
                reactor, settings, topology.outbound(cid), to_json(message)
            )
        second = ApiDriver(reactor)
        self.addCleanup(second.stop)
        await second.start(**backends)
        transport = second.transport(cid)
        await wait_until(lambda: len(transport.outbound) >= 3, timeout=20)
        self.assertEqual(
            sorted(m["content"] for m in transport.outbound),
            ["old 0", "old 1", "old 2"],
        )
        code, body, _ = await second.request(
            "POST",
            f"/channels/{cid}/messages/",
            {"to": "+1", "content": "new", "priority": 5},
        )
        self.assertEqual(code, 201, body)
        await wait_until(lambda: len(transport.outbound) >= 4, timeout=20)
        self.assertEqual(transport.outbound[-1]["content"], "new")
