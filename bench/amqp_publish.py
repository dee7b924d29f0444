"""Persistent publish-with-confirm and consume throughput on a local RabbitMQ.

Measures pika's Twisted adapter (``TwistedProtocolConnection`` +
``TwistedChannel.confirm_delivery``) beside Junebug's own client
(:mod:`junebug.amqp.client`), raw and through
:class:`junebug.amqp.rabbitmq.RabbitMQBroker`, two ways:

(a) sequential: await each confirm before the next publish;
(b) pipelined: keep up to ``--outstanding`` unconfirmed messages in flight;

and then (c) consuming the queue with prefetch 100, acking each message.
Each line gives msg/s and the CPU this process spent per message (the
figure that matters when the broker shares the machine).

Messages are persistent (delivery_mode 2) vumi user messages routed to a
durable queue, so RabbitMQ writes them to disk before confirming.  The queue is
purged between runs and deleted at the end.

    .venv/bin/python -m bench.amqp_publish [--messages 5000] [--outstanding 100]
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any
from uuid import uuid4

from twisted.internet import task
from twisted.internet.defer import (
    Deferred,
    DeferredSemaphore,
    ensureDeferred,
    gatherResults,
)
from twisted.internet.endpoints import HostnameEndpoint, connectProtocol

from junebug.amqp.broker import EXCHANGE
from junebug.amqp.client import AmqpChannel, AmqpClient, Delivery
from junebug.amqp.frames import publish_properties
from junebug.amqp.rabbitmq import AmqpSettings, RabbitMQBroker
from junebug.messages import to_json, user_message

DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/"

TXAMQP_NOTE = (
    "txamqp 0.8.2: not measured - neither its wheel nor its sdist ships the AMQP "
    "0-9-1 spec XML its loader needs (txamqp.spec.load(DEFAULT_SPEC) fails with "
    "ValueError: unknown url type ...specs/standard/amqp0-9.stripped.xml)."
)


async def sequential(publish: Callable[[], Awaitable[Any]], count: int) -> None:
    for _ in range(count):
        await publish()


async def pipelined(
    publish: Callable[[], Awaitable[Any]], count: int, outstanding: int
) -> None:
    window = DeferredSemaphore(outstanding)

    def one() -> Deferred[Any]:
        return ensureDeferred(_awaited(publish()))

    await gatherResults([window.run(one) for _ in range(count)])


async def _awaited(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


async def timed(label: str, run: Awaitable[None], count: int, purge: Any) -> None:
    started = time.perf_counter()
    cpu = time.process_time()
    await run
    elapsed = time.perf_counter() - started
    used = time.process_time() - cpu
    print(
        f"  {label:<44} {count / elapsed:>9,.0f} msg/s  ({elapsed:.2f}s, "
        f"{used / count * 1e6:,.0f} µs CPU/msg)"
    )
    await purge()


async def consume_pika(channel: Any, queue: str, count: int) -> None:
    await channel.basic_qos(prefetch_count=100)
    queue_obj, tag = await channel.basic_consume(queue=queue, auto_ack=False)
    for _ in range(count):
        received = await queue_obj.get()
        channel.basic_ack(delivery_tag=received.method.delivery_tag)
    await channel.basic_cancel(tag)


async def consume_own(channel: AmqpChannel, queue: str, count: int) -> None:
    await channel.basic_qos(100)
    done: Deferred[None] = Deferred()
    seen = 0

    def delivered(delivery: Delivery) -> None:
        nonlocal seen
        channel.basic_ack(delivery.delivery_tag)
        seen += 1
        if seen == count:
            done.callback(None)

    tag = await channel.basic_consume(queue, delivered, lambda reason: None)
    await done
    await channel.basic_cancel(tag)


async def main(reactor: Any, args: argparse.Namespace) -> None:
    from pika import BasicProperties, ConnectionParameters, PlainCredentials
    from pika.adapters.twisted_connection import TwistedProtocolConnection

    settings = AmqpSettings.from_url(args.url)
    queue = f"bench.amqp_publish.{uuid4().hex}"
    body = to_json(
        user_message(
            to_addr="+27820000000",
            from_addr="12345",
            transport_name="bench",
            content="A benchmark message of a typical SMS length. " * 3,
        )
    )
    properties = BasicProperties(content_type="application/json", delivery_mode=2)
    count, outstanding = args.messages, args.outstanding

    broker = RabbitMQBroker(reactor, settings)
    await broker.when_connected(timeout=10)
    raw: Any = await connectProtocol(
        HostnameEndpoint(reactor, settings.host, settings.port),
        TwistedProtocolConnection(
            ConnectionParameters(
                virtual_host=settings.vhost,
                credentials=PlainCredentials(settings.username, settings.password),
            ),
            custom_reactor=reactor,
        ),
    )
    own = AmqpClient(
        reactor,
        vhost=settings.vhost,
        username=settings.username,
        password=settings.password,
    )
    await connectProtocol(HostnameEndpoint(reactor, settings.host, settings.port), own)
    try:
        await raw.ready
        channel = await raw.channel()
        await channel.confirm_delivery()
        await own.ready
        own_channel = await own.channel()
        await own_channel.confirm_select()
        own_properties = publish_properties("application/json", 2)
        await broker.declare_queue(queue)

        def own_publish() -> Deferred[None]:
            return own_channel.publish(EXCHANGE, queue, body, own_properties)

        async def fill() -> None:
            await pipelined(own_publish, count, outstanding)

        async def no_purge() -> None:
            pass

        async def purge() -> None:
            await channel.queue_purge(queue=queue)

        def raw_publish() -> Deferred[Any]:
            result: Deferred[Any] = channel.basic_publish(
                exchange=EXCHANGE, routing_key=queue, body=body, properties=properties
            )
            return result

        message = user_message(
            to_addr="+27820000000",
            from_addr="12345",
            transport_name="bench",
            content="A benchmark message of a typical SMS length. " * 3,
        )

        def broker_publish() -> Awaitable[None]:
            return broker.publish(queue, message)

        print(
            f"Persistent publish with confirms, {count:,} messages of {len(body)} "
            f"bytes to a durable queue on {settings.describe()}:"
        )
        # Warm up connection, queue and JIT-less interpreter caches.
        await sequential(raw_publish, min(200, count))
        await purge()
        await timed(
            "pika Twisted adapter (a) sequential",
            sequential(raw_publish, count),
            count,
            purge,
        )
        await timed(
            f"pika Twisted adapter (b) {outstanding} outstanding",
            pipelined(raw_publish, count, outstanding),
            count,
            purge,
        )
        await timed(
            "junebug.amqp.client (a) sequential",
            sequential(own_publish, count),
            count,
            purge,
        )
        await timed(
            f"junebug.amqp.client (b) {outstanding} outstanding",
            pipelined(own_publish, count, outstanding),
            count,
            purge,
        )
        await timed(
            "RabbitMQBroker.publish (a) sequential",
            sequential(broker_publish, count),
            count,
            purge,
        )
        await timed(
            f"RabbitMQBroker.publish (b) {outstanding} outstanding",
            pipelined(broker_publish, count, outstanding),
            count,
            purge,
        )
        consumer_channel = await raw.channel()
        await fill()
        await timed(
            "pika Twisted adapter (c) consume and ack",
            consume_pika(consumer_channel, queue, count),
            count,
            no_purge,
        )
        own_consumer = await own.channel()
        await fill()
        await timed(
            "junebug.amqp.client (c) consume and ack",
            consume_own(own_consumer, queue, count),
            count,
            no_purge,
        )
        print(TXAMQP_NOTE)
    finally:
        try:
            await broker.delete_queue(queue)
        finally:
            closed = raw.close()
            if closed is not None:
                await closed
            await own.close()
            await broker.close()


def run() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--url", default=os.environ.get("JUNEBUG_TEST_AMQP_URL", DEFAULT_URL)
    )
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--outstanding", type=int, default=100)
    args = parser.parse_args()
    if not 0 < args.messages <= 100_000:
        parser.error("--messages must be between 1 and 100000")
    task.react(lambda reactor: ensureDeferred(main(reactor, args)))


if __name__ == "__main__":
    run()
