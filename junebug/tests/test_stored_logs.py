"""Tests for junebug.stored_logs: buffered, capped, never in the logger's way."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.task import Clock
from twisted.logger import Logger, LogPublisher
from twisted.trial.unittest import SynchronousTestCase

from junebug.channel_logs import LogFileRouter
from junebug.errors import StoreUnavailable
from junebug.stored_logs import FLUSH_INTERVAL, StoredLogs
from junebug.stores.backend import CappedPush
from junebug.stores.memory import MemoryBackend
from junebug.testing.backends_away import StoreSwitch


class CountingBackend(MemoryBackend):
    """Counts list pushes; can hold them (a slow Redis)."""

    def __init__(self, clock: Clock) -> None:
        super().__init__(clock)
        self.pushes: list[tuple[str, int]] = []
        self.calls = 0
        self.hold: Deferred[None] | None = None

    async def push_capped_many(self, pushes: Sequence[CappedPush]) -> None:
        self.calls += 1
        self.pushes += [(push.key, len(push.values)) for push in pushes]
        if self.hold is not None:
            await self.hold
        await super().push_capped_many(pushes)


def entry(text: str) -> dict[str, Any]:
    return {"logger": "c1", "level": 20, "timestamp": 1.0, "message": text}


class Case(SynchronousTestCase):
    def directory(self) -> str:
        path = tempfile.mkdtemp(prefix="junebug-stored-logs-")
        self.addCleanup(shutil.rmtree, path, ignore_errors=True)
        return path

    def result(self, coroutine: Any) -> Any:
        """The result of a coroutine that does not wait on anything."""
        return self.successResultOf(ensureDeferred(coroutine))


class StoredLogsTests(Case):
    def setUp(self) -> None:
        self.clock = Clock()
        self.backend = CountingBackend(self.clock)
        self.dropped = Counter("dropped", "d", registry=CollectorRegistry())
        self.logs = StoredLogs(
            self.backend,
            self.clock,
            lines=3,
            ttl=100,
            message_lines=2,
            message_ttl=50,
            dropped=self.dropped,
            interval=0,
        )

    def lines(self, owner: str = "c1", n: int = 10) -> list[str]:
        got = self.result(self.logs.read_lines(owner, n))
        return [e["message"] for e in got]

    def test_one_push_per_key_per_turn(self) -> None:
        """Entries logged in one reactor turn are written in one call, one push
        per key."""
        for i in range(3):
            self.logs.add_line("c1", entry(f"l{i}"))
        self.logs.add_line("c2", entry("other"))
        self.assertEqual(self.backend.pushes, [])
        self.clock.advance(0)
        self.assertEqual(sorted(self.backend.pushes), [("c1:logs", 3), ("c2:logs", 1)])
        self.assertEqual(self.backend.calls, 1)
        self.assertEqual(self.lines(), ["l2", "l1", "l0"])
        self.assertEqual(self.result(self.backend.ttl("c1:logs")), 100)

    def test_entries_of_an_interval_go_in_one_call(self) -> None:
        """By default entries are gathered for FLUSH_INTERVAL: the turns of
        a message's exchanges make one call, not one each."""
        logs = StoredLogs(self.backend, self.clock)
        for i in range(3):
            logs.record("c1", "m", f"step {i}", {})
            self.clock.advance(0.01)
        self.assertEqual(self.backend.calls, 0)
        self.clock.advance(FLUSH_INTERVAL)
        self.assertEqual(
            (self.backend.calls, self.backend.pushes), (1, [("c1:message_logs:m", 3)])
        )

    def test_capped(self) -> None:
        for i in range(5):
            self.logs.add_line("c1", entry(f"l{i}"))
            self.clock.advance(0)
        self.assertEqual(self.lines(), ["l4", "l3", "l2"])
        self.assertEqual(self.lines(n=1), ["l4"])

    def test_message_entries_oldest_first_and_capped(self) -> None:
        self.logs.add_line("c1", entry("about m"), "m")
        self.logs.record("c1", "m", "submit_sm", {"sequence_number": 7})
        self.clock.advance(0)
        got = self.result(self.logs.read_message("c1", "m"))
        self.assertEqual([e["message"] for e in got], ["about m", "submit_sm"])
        self.assertEqual(got[1]["details"], {"sequence_number": 7})
        self.assertEqual({e["message_id"] for e in got}, {"m"})
        self.assertEqual(self.result(self.backend.ttl("c1:message_logs:m")), 50)
        self.logs.record("c1", "m", "third", {})
        got = self.result(self.logs.read_message("c1", "m"))
        self.assertEqual([e["message"] for e in got], ["submit_sm", "third"])
        # the line is in the channel's log too; the recorded exchange is not
        self.assertEqual(self.lines(), ["about m"])

    def test_read_writes_what_is_buffered(self) -> None:
        """A read in this process sees what this process logged just before."""
        self.logs.add_line("c1", entry("just now"))
        self.assertEqual(self.lines(), ["just now"])

    def test_store_away_drops_and_counts(self) -> None:
        """The store failing loses the batch, counted; nothing raises."""
        switch = StoreSwitch(self.backend)
        switch.away = True
        self.logs.add_line("c1", entry("a"))
        self.logs.add_line("c1", entry("b"), "m")
        self.clock.advance(0)
        self.assertEqual(self.dropped._value.get(), 3)
        self.flushLoggedErrors(StoreUnavailable)
        switch.back()
        self.logs.add_line("c1", entry("c"))
        self.clock.advance(0)
        self.assertEqual(self.lines(), ["c"])

    def test_fields_that_are_not_json_are_written_as_text(self) -> None:
        self.logs.record("c1", "m", "odd", {"raw": b"\x00", "when": object})
        self.clock.advance(0)
        [got] = self.result(self.logs.read_message("c1", "m"))
        self.assertEqual(got["details"]["raw"], "b'\\x00'")

    def test_one_batch_in_flight(self) -> None:
        """While Redis is slow, entries wait (capped) for the next batch."""
        self.backend.hold = Deferred()
        self.logs.add_line("c1", entry("first"))
        self.clock.advance(0)
        for i in range(10):
            self.logs.add_line("c1", entry(f"l{i}"))
            self.clock.advance(0)
        self.assertEqual(self.backend.pushes, [("c1:logs", 1)])
        hold, self.backend.hold = self.backend.hold, None
        hold.callback(None)
        self.assertEqual(self.backend.pushes, [("c1:logs", 1), ("c1:logs", 3)])
        self.assertEqual(self.lines(), ["l9", "l8", "l7"])

    def test_pending_keys_bounded(self) -> None:
        logs = StoredLogs(
            self.backend,
            self.clock,
            dropped=self.dropped,
            max_pending_keys=2,
            interval=0,
        )
        for owner in ("a", "b", "c"):
            logs.add_line(owner, entry("x"))
        self.assertEqual(self.dropped._value.get(), 1)
        self.clock.advance(0)
        self.assertEqual(
            sorted(k for k, _ in self.backend.pushes), ["a:logs", "b:logs"]
        )

    def test_pending_entries_bounded(self) -> None:
        logs = StoredLogs(
            self.backend,
            self.clock,
            dropped=self.dropped,
            max_pending_entries=3,
            interval=0,
        )
        for i in range(5):
            logs.add_line("a", entry(f"l{i}"))
        self.assertEqual(self.dropped._value.get(), 2)
        self.clock.advance(0)
        logs.add_line("a", entry("after the write"))
        self.assertEqual(self.dropped._value.get(), 2)

    def test_forget(self) -> None:
        self.logs.add_line("c1", entry("a"))
        self.clock.advance(0)
        self.logs.add_line("c1", entry("buffered"))
        self.result(self.logs.forget("c1"))
        self.clock.advance(0)
        self.assertEqual(self.lines(), [])

    def test_stop_writes_the_rest_then_ignores(self) -> None:
        self.logs.add_line("c1", entry("last"))
        self.result(self.logs.stop())
        self.logs.add_line("c1", entry("after stop"))
        self.clock.advance(0)
        self.assertEqual(self.lines(), ["last"])


class ObserverTests(Case):
    """The file router hands every entry of an owner to the store."""

    def test_events_reach_the_store(self) -> None:
        clock = Clock()
        backend = MemoryBackend(clock)
        stored = StoredLogs(backend, clock, interval=0)
        publisher = LogPublisher()
        router = LogFileRouter(self.directory(), publisher=publisher, store=stored)
        router.start()
        self.addCleanup(router.stop)
        log = Logger(observer=publisher)
        log.info("hello {who}", who="you", channel_id="c1")
        log.info("about {message_id}", message_id="m1", channel_id="c1")
        log.info("no owner", message_id="m1")
        log.debug("too quiet", channel_id="c1")
        clock.advance(0)
        lines = self.result(stored.read_lines("c1", 10))
        self.assertEqual([e["message"] for e in lines], ["about m1", "hello you"])
        self.assertEqual(lines[0]["logger"], "c1")
        about = self.result(stored.read_message("c1", "m1"))
        self.assertEqual([e["message"] for e in about], ["about m1"])

    def test_store_failure_never_reaches_the_logger(self) -> None:
        """A store that raises at once: logging still returns normally, and
        the warning it causes (no owner) is not stored itself."""
        clock = Clock()
        backend = MemoryBackend(clock)
        switch = StoreSwitch(backend)
        switch.away = True
        stored = StoredLogs(backend, clock, interval=0)
        publisher = LogPublisher()
        seen: list[Any] = []
        publisher.addObserver(seen.append)
        router = LogFileRouter(self.directory(), publisher=publisher, store=stored)
        router.start()
        self.addCleanup(router.stop)
        log = Logger(observer=publisher)
        log.info("one", channel_id="c1")
        clock.advance(0)
        log.info("two", channel_id="c1")
        clock.advance(0)
        switch.back()
        self.assertEqual(self.result(stored.read_lines("c1", 10)), [])
        self.assertEqual([e["log_format"] for e in seen], ["one", "two"])
