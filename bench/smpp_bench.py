"""SMPP MT throughput against the node-smpp test SMSC, on loopback.

Two figures, each against a fresh ``node_smpp_smsc.js`` (``ack-only`` mode,
quiet) started by :class:`junebug.tests.support.smsc.SmscPeer`:

1. **Protocol core**: :class:`~junebug.transports.smpp.protocol.SmppProtocol`
   and :class:`~junebug.transports.smpp.session.SmppSession` alone (framing,
   PDU codec, sequence numbers, response correlation), with at most ``W``
   ``submit_sm`` outstanding: ``submit_sm/s`` at window 1 and 10.
2. **End to end**: :meth:`SmppTransport.handle_outbound` for each message,
   ``--prefetch`` calls at once as the channel makes them, window 10: text
   encoding, ``submit_sm``, the response, the SMSC id written to the store
   (in memory, or the real Redis with ``--redis``) and the ack event
   published (to a list): MT ``msg/s``.

The SMSC shares the machine's cores, so the figures are a floor.

    .venv/bin/python -m bench.smpp_bench [--count 20000] [--e2e-count 10000]
        [--prefetch 20] [--redis]

``--baseline core --window W`` or ``--baseline mo`` prints a single figure as a
``JSON {...}`` line instead: the baselines of ``python -m bench`` scenarios
(b) and (c) (``mo``: the node peer floods ``--count`` ``deliver_sm`` at a bare
session that only answers them).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from twisted.internet import task
from twisted.internet.defer import (
    Deferred,
    DeferredList,
    DeferredSemaphore,
    ensureDeferred,
)
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.logger import Logger

from junebug.converter import structure
from junebug.messages import Message, user_message
from junebug.stores.memory import MemoryBackend
from junebug.tests.support.smsc import SmscPeer
from junebug.transports.interface import TransportContext
from junebug.transports.smpp.config import SmppConfig
from junebug.transports.smpp.pdu import PDU, BindTransceiver, SubmitSM
from junebug.transports.smpp.protocol import SmppProtocol
from junebug.transports.smpp.session import SessionSettings, SmppSession
from junebug.transports.smpp.transport import SmppTransport


class _Owner:
    """Just enough of a session owner to know when the bind is done."""

    def __init__(self) -> None:
        self.bound: Deferred[None] = Deferred()

    def session_binding(self, session: SmppSession) -> None:
        pass

    def session_bound(self, session: SmppSession) -> None:
        self.bound.callback(None)

    def session_bind_failed(self, session: SmppSession, kind: str, reason: str) -> None:
        self.bound.errback(RuntimeError(reason))

    def session_closed(self, session: SmppSession, reason: str) -> None:
        pass

    def request_received(self, session: SmppSession, pdu: PDU) -> Deferred[int]:
        d: Deferred[int] = Deferred()
        d.callback(0)
        return d


class _MoCounter(_Owner):
    """An owner that only answers ``deliver_sm`` (status 0) and times them."""

    def __init__(self, count: int) -> None:
        super().__init__()
        self.count = count
        self.received = 0
        self.first: float | None = None
        self.last: float | None = None
        self.done: Deferred[None] = Deferred()

    def request_received(self, session: SmppSession, pdu: PDU) -> Deferred[int]:
        now = time.perf_counter()
        if self.first is None:
            self.first = now
        self.last = now
        self.received += 1
        if self.received == self.count:
            self.done.callback(None)
        return super().request_received(session, pdu)


async def _start_peer(reactor: Any, env: dict[str, str] | None = None) -> SmscPeer:
    peer = SmscPeer(reactor, "node", mode="ack-only", env={"QUIET": "1", **(env or {})})
    await peer.start()
    return peer


async def _bound_session(reactor: Any, peer: SmscPeer, owner: Any) -> SmppSession:
    """A bare session bound as transceiver to ``peer``, reporting to ``owner``
    (which has a ``bound`` Deferred)."""
    settings = SessionSettings(
        bind_class=BindTransceiver,
        system_id="esme1",
        password="secret",
        enquire_link_interval=300.0,
    )
    session = SmppSession(settings, reactor, owner)
    endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", peer.port)
    await connectProtocol(endpoint, SmppProtocol(session))
    await owner.bound
    return session


async def mo_core(reactor: Any, count: int) -> float:
    """``deliver_sm``/s into a bare session that only answers them.

    The peer floods ``count`` MO (``MO_COUNT``, 50 unanswered at most) after
    the bind; the rate is from the first ``deliver_sm`` to the last.
    """
    peer = await _start_peer(reactor, {"MO_COUNT": str(count)})
    try:
        owner = _MoCounter(count)
        session = await _bound_session(reactor, peer, owner)
        await owner.done
        assert owner.first is not None and owner.last is not None
        elapsed = owner.last - owner.first
        session.unbind()
        await session.wait_closed()
        return (count - 1) / elapsed if elapsed > 0 else float(count)
    finally:
        await peer.stop()


async def protocol_core(reactor: Any, count: int, window: int) -> float:
    """``submit_sm``/s of the session alone with ``window`` outstanding."""
    peer = await _start_peer(reactor)
    try:
        owner = _Owner()
        session = await _bound_session(reactor, peer, owner)
        failures: list[Any] = []
        done: Deferred[None] = Deferred()
        state = {"sent": 0, "settled": 0}

        def send_next() -> None:
            n = state["sent"]
            state["sent"] += 1
            pdu = SubmitSM(
                sequence_number=session.next_sequence_number(),
                source_addr="1234",
                destination_addr="27820001111",
                short_message=b"benchmark message %d" % n,
            )
            session.send_request(pdu).addBoth(settled)

        def settled(result: Any) -> None:
            # Each answer lets the next submit_sm go: a window of ``window``.
            if not isinstance(result, PDU) or result.command_status:
                failures.append(result)
            state["settled"] += 1
            if state["sent"] < count:
                send_next()
            elif state["settled"] == count:
                done.callback(None)

        started = time.perf_counter()
        for _ in range(min(window, count)):
            send_next()
        await done
        elapsed = time.perf_counter() - started
        if failures:
            raise RuntimeError(f"{len(failures)} submits failed: {failures[:3]}")
        session.unbind()
        await session.wait_closed()
        return count / elapsed
    finally:
        await peer.stop()


async def end_to_end(reactor: Any, count: int, prefetch: int, redis: bool) -> float:
    """MT msg/s through SmppTransport.handle_outbound."""
    peer = await _start_peer(reactor)
    events: list[Message] = []
    backend: Any = MemoryBackend(reactor)
    fixture_backend = None
    if redis:
        from junebug.stores.redis import connect_redis
        from junebug.testing.redis import redis_test_address

        address = redis_test_address()
        fixture_backend = backend = await connect_redis(
            address.host,
            address.port,
            address.db,
            address.password,
            "junebug-bench-smpp",
            clock=reactor,
        )

    async def publish_event(message: Message) -> None:
        events.append(message)

    async def ignore(message: Message) -> None:
        return None

    context = TransportContext(
        channel_id="bench",
        reactor=reactor,
        publish_inbound=ignore,
        publish_event=publish_event,
        publish_status=ignore,
        store=backend,
        log=Logger(namespace="bench.smpp"),
    )
    config = structure(
        {
            "twisted_endpoint": peer.endpoint,
            "system_id": "esme1",
            "password": "secret",
            "window_size": 10,
        },
        SmppConfig,
    )
    transport = SmppTransport(context, config)
    try:
        await transport.start()
        while not transport.is_bound:
            await task.deferLater(reactor, 0.01, lambda: None)
        messages = [
            user_message(
                to_addr="27820001111",
                from_addr="1234",
                transport_name="bench",
                content=f"benchmark message {n}",
            )
            for n in range(count)
        ]
        slots = DeferredSemaphore(prefetch)

        def submit(message: Message) -> Deferred[None]:
            return ensureDeferred(transport.handle_outbound(message))

        started = time.perf_counter()
        results = await DeferredList(
            [slots.run(submit, m) for m in messages],
            consumeErrors=True,
        )
        elapsed = time.perf_counter() - started
        failed = [result for ok, result in results if not ok]
        acks = sum(1 for event in events if event["event_type"] == "ack")
        if failed or acks != count:
            raise RuntimeError(f"{len(failed)} failed, {acks} acks of {count}")
        return count / elapsed
    finally:
        await transport.stop()
        if fixture_backend is not None:
            # Each ack names the SMSC ids whose mappings were written.
            keys = [
                f"smpp:esme1@bench:remote_message:{smsc_id}"
                for event in events
                if event["event_type"] == "ack"
                for smsc_id in str(event["sent_message_id"]).split(",")
            ]
            for start in range(0, len(keys), 500):
                await fixture_backend.delete(*keys[start : start + 500])
            await fixture_backend.close()
        await peer.stop()


async def main(reactor: Any, args: argparse.Namespace) -> None:
    print(f"SMPP against node-smpp 0.5.1 on loopback ({args.count} submit_sm per run)")
    for window in (1, 10):
        rate = await protocol_core(reactor, args.count, window)
        print(f"protocol core, window {window:>2}: {rate:>9,.0f} submit_sm/s")
    store = "Redis" if args.redis else "memory store"
    rate = await end_to_end(reactor, args.e2e_count, args.prefetch, args.redis)
    print(
        f"end to end MT (SmppTransport, window 10, prefetch {args.prefetch}, "
        f"{store}): {rate:>9,.0f} msg/s ({args.e2e_count} messages)"
    )


async def baseline(reactor: Any, args: argparse.Namespace) -> None:
    """One figure as a ``JSON {...}`` line, for ``python -m bench``."""
    import json
    import resource

    if args.baseline == "core":
        rate = await protocol_core(reactor, args.count, args.window)
    else:
        rate = await mo_core(reactor, args.count)
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    figures = {"msg_per_s": rate, "count": args.count, "peak_rss_mb": peak_kb / 1024}
    print("JSON " + json.dumps(figures), flush=True)


def run() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=20000)
    parser.add_argument("--e2e-count", type=int, default=10000)
    parser.add_argument("--prefetch", type=int, default=20)
    parser.add_argument("--redis", action="store_true")
    parser.add_argument(
        "--baseline",
        choices=("core", "mo"),
        help="print one JSON figure: protocol-core submit_sm/s at --window, "
        "or deliver_sm/s answered by a bare session (mo)",
    )
    parser.add_argument("--window", type=int, default=10)
    args = parser.parse_args()
    if args.baseline:
        task.react(lambda reactor: ensureDeferred(baseline(reactor, args)))
    task.react(lambda reactor: ensureDeferred(main(reactor, args)))


if __name__ == "__main__":
    run()
