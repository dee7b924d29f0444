"""A fast HTTP sink for ``mo_url`` and ``event_url``, run as its own process.

``python -m bench.sink PORT`` listens on 127.0.0.1:PORT.  It speaks just
enough HTTP/1.1 for Junebug's client (keep-alive, ``Content-Length`` or
chunked bodies, pipelining) on a bare Twisted :class:`Protocol`, because
``twisted.web`` would cost more CPU than the gateway it is measuring: it has to
take thousands of POSTs a second on a machine it shares with everything else.

Every POST (and Kannel's DLR ``GET``) is answered ``200`` at once and
recorded with the ``time.monotonic()`` of its arrival (``CLOCK_MONOTONIC``,
the same clock in every process of the machine, so the driver can subtract
its own times):

- ``POST /event``: a Junebug event; the first arrival of each
  ``(message_id, event_type)`` is kept, repeats are counted.
- ``POST /mo``: an MO message; arrivals and distinct ``content`` are counted,
  and the latency of each ``bench MO <i> <send time>`` from the node peer's
  flood (``MO_COUNT``) is kept.
- ``POST /kannel/mo``: an MO from Kannel's ``sms-service`` (``post-url``):
  the body is the text; counted as ``/mo`` is.
- ``GET /kannel/dlr?id=<n>&type=<%d>``: a delivery report from Kannel's
  ``dlr-url``, recorded as the Junebug event it stands for (type 8, the
  SMSC's ack: ``submitted``; 1: ``delivery_succeeded``; 2:
  ``delivery_failed``; 4: ``delivery_pending``; 16, the SMSC's nack:
  ``rejected``) under message id ``<n>``.
- ``GET /stats``: counts so far, as JSON.
- ``GET /dump``: everything (``events``: message id -> event type -> time;
  ``mo``: counts, first and last arrival).
- ``POST /reset``: forget everything.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any
from urllib.parse import parse_qs

from twisted.internet import reactor
from twisted.internet.protocol import Factory, Protocol
from typing_extensions import override

#: Kannel's DLR types (the ``%d`` of a ``dlr-url``) as Junebug's event types.
KANNEL_DLR_EVENTS = {
    "1": "delivery_succeeded",
    "2": "delivery_failed",
    "4": "delivery_pending",
    "8": "submitted",
    "16": "rejected",
}

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: application/json\r\n\r\n{}"


class Records:
    """What arrived, in memory."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.events: dict[str, dict[str, float]] = {}
        self.event_posts = 0
        self.event_repeats = 0
        self.event_types: dict[str, int] = {}
        self.mo_posts = 0
        self.mo_contents: set[str] = set()
        self.mo_first: float | None = None
        self.mo_last: float | None = None
        self.mo_latencies: list[float] = []
        self.bad = 0

    def event(self, body: bytes, now: float) -> None:
        data = json.loads(body)
        self.event_of(str(data.get("message_id")), str(data.get("event_type")), now)

    def event_of(self, message_id: str, kind: str, now: float) -> None:
        self.event_posts += 1
        self.event_types[kind] = self.event_types.get(kind, 0) + 1
        per_message = self.events.setdefault(message_id, {})
        if kind in per_message:
            self.event_repeats += 1
        else:
            per_message[kind] = now

    def mo(self, body: bytes, now: float) -> None:
        self.mo_text(str(json.loads(body).get("content")), now)

    def mo_text(self, content: str, now: float) -> None:
        self.mo_posts += 1
        self.mo_contents.add(content)
        words = content.split(" ")
        if len(words) == 4 and words[:2] == ["bench", "MO"]:
            # The node peer's flood: "bench MO <i> <monotonic send time>".
            self.mo_latencies.append(now - float(words[3]))
        if self.mo_first is None:
            self.mo_first = now
        self.mo_last = now

    def stats(self) -> dict[str, Any]:
        return {
            "event_posts": self.event_posts,
            "event_repeats": self.event_repeats,
            "event_types": self.event_types,
            "messages": len(self.events),
            "mo_posts": self.mo_posts,
            "mo_unique": len(self.mo_contents),
            "mo_first": self.mo_first,
            "mo_last": self.mo_last,
            "bad": self.bad,
            "now": time.monotonic(),
        }

    def dump(self) -> dict[str, Any]:
        return {
            **self.stats(),
            "events": self.events,
            "mo_latencies": self.mo_latencies,
        }


RECORDS = Records()


class SinkProtocol(Protocol):
    """One keep-alive HTTP/1.1 connection."""

    def __init__(self) -> None:
        self.buffer = b""

    @override
    def dataReceived(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end].decode("latin-1")
            lines = head.split("\r\n")
            method, _, rest = lines[0].partition(" ")
            path = rest.rpartition(" ")[0]
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            start = end + 4
            if headers.get("transfer-encoding", "").lower() == "chunked":
                parsed = _dechunk(self.buffer, start)
                if parsed is None:
                    return
                body, start = parsed
            else:
                length = int(headers.get("content-length") or 0)
                if len(self.buffer) - start < length:
                    return
                body = self.buffer[start : start + length]
                start += length
            self.buffer = self.buffer[start:]
            self.transport.write(self.handle(method, path, body))  # type: ignore[union-attr]
            if headers.get("connection", "").lower() == "close":
                self.transport.loseConnection()  # type: ignore[union-attr]
                return

    def handle(self, method: str, path: str, body: bytes) -> bytes:
        now = time.monotonic()
        route = path.partition("?")[0]
        try:
            if method == "POST" and route == "/event":
                RECORDS.event(body, now)
            elif method == "POST" and route == "/mo":
                RECORDS.mo(body, now)
            elif method == "POST" and route == "/kannel/mo":
                RECORDS.mo_text(body.decode("utf-8", "replace"), now)
            elif method == "GET" and route == "/kannel/dlr":
                query = parse_qs(path.partition("?")[2])
                kind = KANNEL_DLR_EVENTS.get(query["type"][0], query["type"][0])
                RECORDS.event_of(query["id"][0], kind, now)
            elif method == "GET" and route in ("/stats", "/dump"):
                data = RECORDS.stats() if route == "/stats" else RECORDS.dump()
                payload = json.dumps(data).encode()
                return (
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Content-Length: %d\r\n\r\n%s" % (len(payload), payload)
                )
            elif method == "POST" and route == "/reset":
                RECORDS.reset()
            else:
                RECORDS.bad += 1
        except (ValueError, KeyError):
            RECORDS.bad += 1
        return OK


def _dechunk(buffer: bytes, start: int) -> tuple[bytes, int] | None:
    """A chunked body from ``buffer[start:]`` and where it ends, if complete."""
    parts: list[bytes] = []
    position = start
    while True:
        line_end = buffer.find(b"\r\n", position)
        if line_end < 0:
            return None
        size = int(buffer[position:line_end].split(b";")[0], 16)
        position = line_end + 2
        if size == 0:
            trailer_end = buffer.find(b"\r\n", position)
            if trailer_end < 0:
                return None
            return b"".join(parts), trailer_end + 2
        if len(buffer) < position + size + 2:
            return None
        parts.append(buffer[position : position + size])
        position += size + 2


def main() -> None:
    port = int(sys.argv[1])
    factory: Any = Factory.forProtocol(SinkProtocol)
    reactor.listenTCP(port, factory, backlog=1024, interface="127.0.0.1")
    print(f"sink listening on 127.0.0.1:{port}", flush=True)
    reactor.run()


if __name__ == "__main__":
    main()
