"""Helpers for tests that use a real RabbitMQ.

:func:`rabbitmq_test_settings` points at ``JUNEBUG_TEST_AMQP_URL`` (default
``amqp://guest:guest@127.0.0.1:5672/``).  For a local broker, the first call
in a process creates a throw-away vhost with ``rabbitmqctl`` (deleted again at
interpreter exit) so tests never touch real data; without ``rabbitmqctl`` on
``PATH``, or for a remote broker, the URL's own vhost is used.

:func:`peek_message` and :func:`queue_is_durable` look at a queue through a
separate raw pika connection, independent of the broker under test.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import subprocess
from typing import Any
from uuid import uuid4

import attrs
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import HostnameEndpoint, connectProtocol
from twisted.internet.interfaces import IReactorTime

from junebug.amqp.rabbitmq import AmqpSettings

__all__ = [
    "DEFAULT_TEST_URL",
    "ENV_URL",
    "RawMessage",
    "list_queue_names",
    "peek_message",
    "queue_is_durable",
    "rabbitmq_test_settings",
]

ENV_URL = "JUNEBUG_TEST_AMQP_URL"
DEFAULT_TEST_URL = "amqp://guest:guest@127.0.0.1:5672/"

_LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
_RABBITMQCTL_TIMEOUT = 60

_cached: AmqpSettings | None = None
_setup_error: RuntimeError | None = None


def _rabbitmqctl(*args: str) -> None:
    done = subprocess.run(
        ["rabbitmqctl", *args],
        capture_output=True,
        text=True,
        timeout=_RABBITMQCTL_TIMEOUT,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"rabbitmqctl {' '.join(args)} failed ({done.returncode}): "
            f"{done.stderr.strip() or done.stdout.strip()}"
        )


def _delete_vhost(vhost: str) -> None:
    # Best effort at exit: a leftover test vhost is harmless.
    with contextlib.suppress(OSError, RuntimeError, subprocess.TimeoutExpired):
        _rabbitmqctl("delete_vhost", vhost)


def rabbitmq_test_settings(**overrides: Any) -> AmqpSettings:
    """Settings for the test broker, in a per-process throw-away vhost.

    ``overrides`` replace fields of the result (e.g. fast retry delays).
    """
    global _cached, _setup_error
    if _setup_error is not None:
        raise _setup_error  # failed once: fail every test the same way, fast
    if _cached is None:
        base = AmqpSettings.from_url(os.environ.get(ENV_URL, DEFAULT_TEST_URL))
        if shutil.which("rabbitmqctl") is not None and base.host in _LOCAL_HOSTS:
            vhost = f"junebug-test-{uuid4().hex[:12]}"
            try:
                _rabbitmqctl("add_vhost", vhost)
                atexit.register(_delete_vhost, vhost)
                _rabbitmqctl(
                    "set_permissions", "-p", vhost, base.username, ".*", ".*", ".*"
                )
            except (OSError, RuntimeError, subprocess.TimeoutExpired) as e:
                _setup_error = RuntimeError(f"could not create a test vhost: {e}")
                raise _setup_error from e
            base = attrs.evolve(base, vhost=vhost)
        _cached = base
    return attrs.evolve(_cached, **overrides)


@attrs.frozen
class RawMessage:
    """A message as RabbitMQ holds it."""

    body: bytes
    content_type: str | None
    delivery_mode: int | None
    redelivered: bool


async def _with_channel(reactor: IReactorTime, settings: AmqpSettings, use: Any) -> Any:
    """Run ``await use(channel)`` on a fresh connection, then close it."""
    from pika import ConnectionParameters, PlainCredentials
    from pika.adapters.twisted_connection import TwistedProtocolConnection

    parameters = ConnectionParameters(
        virtual_host=settings.vhost,
        credentials=PlainCredentials(settings.username, settings.password),
    )
    endpoint = HostnameEndpoint(reactor, settings.host, settings.port, timeout=10)
    protocol: Any = await connectProtocol(
        endpoint, TwistedProtocolConnection(parameters, custom_reactor=reactor)
    )
    try:
        await protocol.ready
        channel = await protocol.channel()
        return await use(channel)
    finally:
        closed: Deferred[Any] | None = protocol.close()
        if closed is not None:
            await closed


async def peek_message(
    reactor: IReactorTime, settings: AmqpSettings, queue: str
) -> RawMessage | None:
    """The first message of ``queue`` (left in the queue), or ``None``."""

    async def use(channel: Any) -> RawMessage | None:
        got = await channel.basic_get(queue=queue, auto_ack=False)
        if got is None:
            return None
        return RawMessage(
            body=got.body,
            content_type=got.properties.content_type,
            delivery_mode=got.properties.delivery_mode,
            redelivered=bool(got.method.redelivered),
        )

    result: RawMessage | None = await _with_channel(reactor, settings, use)
    return result


async def queue_is_durable(
    reactor: IReactorTime, settings: AmqpSettings, queue: str
) -> bool:
    """Whether ``queue`` exists and is durable.

    Re-declaring a queue with ``durable=True`` succeeds only if it already is
    durable (RabbitMQ answers ``406 PRECONDITION_FAILED`` otherwise).
    """
    from pika.exceptions import ChannelClosed

    async def use(channel: Any) -> bool:
        try:
            await channel.queue_declare(queue=queue, passive=True)
            await channel.queue_declare(queue=queue, durable=True)
        except ChannelClosed:
            return False
        return True

    result: bool = await _with_channel(reactor, settings, use)
    return result


async def queue_exists(
    reactor: IReactorTime, settings: AmqpSettings, queue: str
) -> bool:
    """Whether ``queue`` exists (a passive declare, which creates nothing)."""
    from pika.exceptions import ChannelClosed

    async def use(channel: Any) -> bool:
        try:
            await channel.queue_declare(queue=queue, passive=True)
        except ChannelClosed:
            return False
        return True

    result: bool = await _with_channel(reactor, settings, use)
    return result


async def publish_raw(
    reactor: IReactorTime, settings: AmqpSettings, routing_key: str, body: bytes
) -> None:
    """Publish ``body`` persistently to the ``vumi`` exchange, as a vumi
    application would."""
    from pika import BasicProperties

    async def use(channel: Any) -> None:
        await channel.basic_publish(
            exchange="vumi",
            routing_key=routing_key,
            body=body,
            properties=BasicProperties(
                delivery_mode=2, content_type="application/json"
            ),
        )

    await _with_channel(reactor, settings, use)


async def list_queue_names(reactor: Any, settings: AmqpSettings) -> list[str]:
    """Every queue in ``settings.vhost``, listed by ``rabbitmqctl`` (one call,
    however many queues; a local broker only)."""
    from twisted.internet.utils import getProcessOutputAndValue

    out, err, code = await getProcessOutputAndValue(
        "rabbitmqctl",
        ["list_queues", "-q", "--no-table-headers", "-p", settings.vhost, "name"],
        env=dict(os.environ),
        reactor=reactor,
    )
    if code != 0:
        raise RuntimeError(f"rabbitmqctl list_queues failed: {err.decode()}")
    return [line.strip() for line in out.decode().splitlines() if line.strip()]
