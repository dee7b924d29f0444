"""Junebug config overrides for this machine's real Redis and RabbitMQ, in a
key prefix of the test's own and the test process's vhost."""

from __future__ import annotations

from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from junebug.testing.rabbitmq import rabbitmq_test_settings
from junebug.testing.redis import start_redis_fixture


async def real_backends(case: SynchronousTestCase, reactor: Any) -> dict[str, Any]:
    """``embedded: False`` with ``redis`` and ``amqp`` of the test's own."""
    redis = await start_redis_fixture(case, reactor)
    settings = rabbitmq_test_settings()
    return {
        "embedded": False,
        "redis": {
            "host": redis.address.host,
            "port": redis.address.port,
            "db": redis.address.db,
            "password": redis.address.password,
            "key_prefix": redis.prefix,
        },
        "amqp": {
            "hostname": settings.host,
            "port": settings.port,
            "vhost": settings.vhost,
            "username": settings.username,
            "password": settings.password,
        },
    }
