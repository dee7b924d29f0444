"""Persistent publish-with-confirm throughput against a local RabbitMQ.

Measures pika's Twisted adapter (``TwistedProtocolConnection`` +
``TwistedChannel.confirm_delivery``), raw and through
:class:`junebug.amqp.rabbitmq.RabbitMQBroker`, two ways:

(a) sequential: await each confirm before the next publish;
(b) pipelined: keep up to ``--outstanding`` unconfirmed messages in flight.

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
    await run
    elapsed = time.perf_counter() - started
    print(f"  {label:<44} {count / elapsed:>9,.0f} msg/s  ({elapsed:.2f}s)")
    await purge()


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
    try:
        await raw.ready
        channel = await raw.channel()
        await channel.confirm_delivery()
        await broker.declare_queue(queue)

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
        print(TXAMQP_NOTE)
    finally:
        try:
            await broker.delete_queue(queue)
        finally:
            closed = raw.close()
            if closed is not None:
                await closed
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
