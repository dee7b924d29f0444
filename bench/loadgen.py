"""HTTP load with per-request times, for the scenarios wrk cannot measure.

wrk gives rates and percentiles but not *which* message was accepted *when*,
and it cannot hold a fixed rate.  This is a small asyncio HTTP/1.1 client over
keep-alive connections with two shapes of load:

- :func:`closed_loop`: ``connections`` clients each POST, wait for the answer
  and POST again, for ``seconds``;
- :func:`open_loop`: a POST every ``1/rate`` seconds whatever the answers
  (a new connection when every open one is busy), so a slow server meets the
  same offered load; latency counts from the *scheduled* send time, so a
  stall is not hidden (no coordinated omission).

Requests are JSON POSTs, or GETs (``method="GET"``) whose query string the
body factory makes (Kannel's ``sendsms``).  Each request gives a
:class:`Sample`: its number (the ``n`` its body was made from),
scheduled/sent time, answer time (both ``time.monotonic()``), HTTP status and
the ``message_id`` of a Junebug answer.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import attrs


@attrs.define
class Sample:
    sent: float
    number: int = -1
    answered: float | None = None
    status: int | None = None
    message_id: str | None = None
    error: str | None = None

    @property
    def latency(self) -> float | None:
        return None if self.answered is None else self.answered - self.sent


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader = reader
        self.writer = writer

    async def exchange(self, request: bytes) -> tuple[int, bytes]:
        self.writer.write(request)
        status_and_headers = await self.reader.readuntil(b"\r\n\r\n")
        lines = status_and_headers.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if headers.get("transfer-encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    await self.reader.readuntil(b"\r\n")
                    break
                chunks.append(await self.reader.readexactly(size + 2))
            data = b"".join(chunk[:-2] for chunk in chunks)
        else:
            data = await self.reader.readexactly(int(headers.get("content-length", 0)))
        return status, data

    def close(self) -> None:
        self.writer.close()


class _Target:
    def __init__(self, url: str, method: str = "POST") -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.method = method
        self.path = parts.path + (f"?{parts.query}" if parts.query else "")
        self.head = (
            f"POST {self.path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            "Content-Type: application/json\r\n"
        ).encode()

    def request(self, body: bytes) -> bytes:
        """The request carrying ``body``: a JSON POST, or a GET with ``body``
        as its query string."""
        if self.method == "GET":
            return b"GET %s?%s HTTP/1.1\r\nHost: %s:%d\r\n\r\n" % (
                self.path.encode(),
                body,
                self.host.encode(),
                self.port,
            )
        return self.head + b"Content-Length: %d\r\n\r\n" % len(body) + body

    async def connect(self) -> _Connection:
        reader, writer = await asyncio.open_connection(self.host, self.port)
        return _Connection(reader, writer)


async def _one(
    connection: _Connection, target: _Target, body: bytes, sample: Sample
) -> bool:
    """POST once; False if the connection is no longer usable."""
    try:
        status, data = await connection.exchange(target.request(body))
    except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
        sample.error = f"{type(exc).__name__}: {exc}"
        return False
    sample.answered = time.monotonic()
    sample.status = status
    if 200 <= status < 300:
        try:
            result = json.loads(data).get("result") or {}
            sample.message_id = result.get("message_id")
        except (ValueError, AttributeError):
            pass
    else:
        sample.error = data[:200].decode("utf-8", "replace")
    return True


async def _closed_loop(
    url: str,
    body: Callable[[int], bytes],
    seconds: float,
    connections: int,
    method: str,
) -> list[Sample]:
    target = _Target(url, method)
    samples: list[Sample] = []
    deadline = time.monotonic() + seconds
    counter = iter(range(10**9))

    async def client() -> None:
        connection = await target.connect()
        try:
            while time.monotonic() < deadline:
                sample = Sample(sent=time.monotonic(), number=next(counter))
                samples.append(sample)
                if not await _one(connection, target, body(sample.number), sample):
                    connection.close()
                    connection = await target.connect()
        finally:
            connection.close()

    await asyncio.gather(*(client() for _ in range(connections)))
    return samples


async def _open_loop(
    url: str,
    body: Callable[[int], bytes],
    rate: float,
    seconds: float,
    max_connections: int,
    method: str,
) -> list[Sample]:
    target = _Target(url, method)
    idle: list[_Connection] = []
    opened = 0
    samples: list[Sample] = []
    tasks: set[asyncio.Task[None]] = set()

    async def fire(n: int, sample: Sample) -> None:
        nonlocal opened
        if idle:
            connection = idle.pop()
        else:
            opened += 1
            connection = await target.connect()
        if await _one(connection, target, body(n), sample):
            idle.append(connection)
        else:
            opened -= 1
            connection.close()

    total = int(rate * seconds)
    started = time.monotonic() + 0.05
    n = 0
    while n < total:
        now = time.monotonic()
        due = min(total, int((now - started) * rate) + 1)
        while n < due:
            sample = Sample(sent=started + n / rate, number=n)
            samples.append(sample)
            if opened - len(idle) >= max_connections:
                sample.error = "no free connection (client limit)"
            else:
                task = asyncio.ensure_future(fire(n, sample))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            n += 1
        await asyncio.sleep(max(0.0, started + n / rate - time.monotonic()))
    if tasks:
        await asyncio.wait(tasks, timeout=60)
    for connection in idle:
        connection.close()
    return samples


def closed_loop(
    url: str,
    body: Callable[[int], bytes],
    seconds: float,
    connections: int = 16,
    method: str = "POST",
) -> list[Sample]:
    """POST (or GET) for ``seconds`` from ``connections`` clients, each one
    at a time."""
    return asyncio.run(_closed_loop(url, body, seconds, connections, method))


def open_loop(
    url: str,
    body: Callable[[int], bytes],
    rate: float,
    seconds: float,
    max_connections: int = 512,
    method: str = "POST",
) -> list[Sample]:
    """POST (or GET) at ``rate`` per second for ``seconds``, whatever the
    answers."""
    return asyncio.run(_open_loop(url, body, rate, seconds, max_connections, method))


def json_body(template: dict[str, Any]) -> Callable[[int], bytes]:
    """A body factory: ``template`` with ``{n}`` in ``content`` filled in."""
    content = str(template.get("content", ""))

    def make(n: int) -> bytes:
        return json.dumps({**template, "content": content.format(n=n)}).encode()

    return make
