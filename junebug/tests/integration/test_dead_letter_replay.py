"""Replaying dead letters on the real RabbitMQ, where the retry consumer runs
beside the replay: a letter refused again goes back to the dead queue while
the replay is still draining it, and must not be replayed twice by it."""

from __future__ import annotations

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from junebug.amqp.rabbitmq import RabbitMQBroker
from junebug.http.delivery import DEAD_QUEUE, RETRY_QUEUE, HttpDelivery
from junebug.testing.polling import poll_until
from junebug.testing.rabbitmq import rabbitmq_test_settings
from junebug.tests.test_http_delivery import BAD, ScriptedHttp


class ReplayOnRabbitMQTests(TestCase):
    async def test_each_letter_is_replayed_once(self) -> None:
        broker = RabbitMQBroker(reactor, rabbitmq_test_settings())
        broker.start()
        self.addCleanup(broker.close)
        await broker.when_connected()
        for queue in (DEAD_QUEUE, RETRY_QUEUE):
            await broker.delete_queue(queue)
            self.addCleanup(broker.delete_queue, queue)
        http = ScriptedHttp(BAD)
        delivery = HttpDelivery(reactor, http, broker)  # type: ignore[arg-type]
        await delivery.start()
        self.addCleanup(delivery.stop)
        await delivery.post_json("http://x/ev", {"n": 1})

        async def dead() -> bool:
            depths = await broker.queue_depths([DEAD_QUEUE])
            return depths.get(DEAD_QUEUE) == 1

        await poll_until(dead, timeout=10, interval=0.05)
        self.assertEqual(await delivery.replay_dead_letters(10), 1)
        await poll_until(dead, timeout=10, interval=0.05)
        self.assertEqual(len(http.calls), 2)
