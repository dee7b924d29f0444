"""Big replies and pipelined commands through Junebug's Redis client.

On the local Redis, under a throw-away key prefix (deleted at the end):

- ``SMEMBERS`` of sets of 100,000 and 200,000 members, and ``GET`` of a
  4 MiB value: wall time and this process's CPU for one call, through
  :class:`~junebug.stores.redis.RedisBackend` (median of ``--repeat``);
- ``GET`` of a short value, ``--commands`` of them pipelined on the client
  (:class:`~junebug.stores.resp.RespClient`): CPU this process spent per
  command.

    .venv/bin/python -m bench.redis_replies [--url redis://127.0.0.1:6379/0]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import uuid
from typing import Any

from twisted.internet import task
from twisted.internet.defer import ensureDeferred, gatherResults

from junebug.stores.redis import RedisBackend, connect_redis
from junebug.testing.redis import RedisAddress

DEFAULT_URL = "redis://127.0.0.1:6379/0"


async def timed(repeat: int, call: Any) -> tuple[float, float]:
    """Median wall and CPU (this process) seconds of ``await call()``."""
    wall, cpu = [], []
    for _ in range(repeat):
        started, started_cpu = time.perf_counter(), time.process_time()
        await call()
        wall.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
    return statistics.median(wall), statistics.median(cpu)


def _ms(figures: tuple[float, float]) -> str:
    return f"{figures[0] * 1000:.1f} ms ({figures[1] * 1000:.1f} ms CPU here)"


async def fill_set(backend: RedisBackend, key: str, size: int) -> None:
    for start in range(0, size, 20_000):
        members = [f"m{n:07d}" for n in range(start, min(start + 20_000, size))]
        await backend.sadd(key, *members)


async def main(reactor: Any, args: argparse.Namespace) -> None:
    prefix = f"junebug-bench:{uuid.uuid4().hex}"
    # positional, as older versions of connect_redis took them (to compare)
    address = RedisAddress.from_url(args.url)
    backend = await connect_redis(
        address.host,
        address.port,
        address.db,
        address.password,
        prefix,
        clock=reactor,
        timeout=60,
    )
    keys = []
    try:
        for size in (100_000, 200_000):
            key = f"set{size}"
            keys.append(key)
            await fill_set(backend, key, size)
            figures = await timed(args.repeat, lambda k=key: backend.smembers(k))
            print(f"SMEMBERS of {size:,} members: {_ms(figures)}")
        keys.append("big")
        await backend.set("big", "x" * (4 * 1024 * 1024))
        figures = await timed(args.repeat, lambda: backend.get("big"))
        print(f"GET of 4 MiB: {_ms(figures)}")
        keys.append("small")
        await backend.set("small", "v" * 20)
        client = backend._client
        for _ in range(3):
            started = time.process_time()
            await gatherResults(
                [client.execute("GET", f"{prefix}:small") for _ in range(args.commands)]
            )
            spent = time.process_time() - started
            print(
                f"GET pipelined x{args.commands:,}: "
                f"{spent / args.commands * 1e6:.2f} us CPU/command"
            )
    finally:
        await backend.delete(*keys)
        await backend.close()


def run() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--url", default=os.environ.get("JUNEBUG_TEST_REDIS_URL", DEFAULT_URL)
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--commands", type=int, default=20_000)
    args = parser.parse_args()
    task.react(lambda reactor: ensureDeferred(main(reactor, args)))


if __name__ == "__main__":
    run()
