"""Tests for junebug.channel_logs."""

from __future__ import annotations

import json
import os
import stat
import tempfile
from pathlib import Path
from typing import Any

from twisted.internet import reactor
from twisted.logger import Logger, LogLevel, LogPublisher
from twisted.trial.unittest import TestCase

from junebug.channel_logs import (
    LogFileRouter,
    event_belongs_to,
    owner_logger,
    read_logs,
    read_logs_async,
)

OWNER = "c0ffee"


def temp_dir(case: TestCase) -> Path:
    """A fresh directory removed after the test (not under the working dir)."""
    holder = tempfile.TemporaryDirectory(prefix="junebug-logs-")
    case.addCleanup(holder.cleanup)
    return Path(holder.name)


def lines_of(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


class ObserverTests(TestCase):
    def setUp(self) -> None:
        self.directory = temp_dir(self) / "logs"
        self.publisher = LogPublisher()
        self.log = Logger(namespace="test", observer=self.publisher)

    def observe(self, **kwargs: Any) -> LogFileRouter:
        """A started router, with OWNER registered for ``log_system`` events."""
        observer = LogFileRouter(self.directory, publisher=self.publisher, **kwargs)
        observer.add_owner(OWNER)
        observer.start()
        self.addCleanup(observer.stop)
        return observer

    def entries(self) -> list[dict[str, Any]]:
        return lines_of(self.directory / OWNER)

    def test_line_format(self) -> None:
        self.observe()
        self.publisher(
            {
                "log_format": "Hello {who}",
                "who": "world",
                "log_level": LogLevel.info,
                "log_time": 1795563760.139433,
                "channel_id": OWNER,
            }
        )
        raw = (self.directory / OWNER).read_text()
        self.assertEqual(
            raw,
            '{"logger": "c0ffee", "level": 20, "timestamp": 1795563760.139433, '
            '"message": "Hello world"}\n',
        )

    def test_creates_directory_0755(self) -> None:
        self.observe()
        umask = os.umask(0)
        os.umask(umask)
        mode = stat.S_IMODE(self.directory.stat().st_mode)
        self.assertEqual(mode, 0o755 & ~umask)

    def test_levels(self) -> None:
        self.observe()
        self.log.debug("d", channel_id=OWNER)
        self.log.info("i", channel_id=OWNER)
        self.log.warn("w", channel_id=OWNER)
        self.log.error("e", channel_id=OWNER)
        self.log.critical("c", channel_id=OWNER)
        self.assertEqual(
            [(e["level"], e["message"]) for e in self.entries()],
            [(20, "i"), (30, "w"), (40, "e"), (50, "c")],
        )

    def test_event_without_level_is_info(self) -> None:
        self.observe()
        self.publisher({"log_format": "bare", "log_system": OWNER})
        [entry] = self.entries()
        self.assertEqual((entry["level"], entry["message"]), (20, "bare"))
        self.assertIsInstance(entry["timestamp"], float)

    def test_owner_filtering(self) -> None:
        self.observe()
        self.log.info("channel", channel_id=OWNER)
        self.log.info("router", router_id=OWNER)
        self.log.info("other channel", channel_id="other")
        self.log.info("nobody")
        self.log.emit(LogLevel.info, "system", log_system=f"x, {OWNER},y")
        self.log.emit(LogLevel.info, "similar system", log_system=f"{OWNER}-2")
        self.log.info("mentions {c} only", c=OWNER)
        self.assertEqual(
            [e["message"] for e in self.entries()], ["channel", "router", "system"]
        )

    def test_event_belongs_to(self) -> None:
        self.assertTrue(event_belongs_to({"log_system": "a,b"}, "b"))
        self.assertFalse(event_belongs_to({"log_system": "ab"}, "b"))
        self.assertFalse(event_belongs_to({"log_system": None}, "b"))
        self.assertTrue(event_belongs_to({"router_id": "b"}, "b"))

    def test_failure(self) -> None:
        self.observe()
        try:
            raise ValueError("boom http://u:hunter2@h/")
        except ValueError:
            self.log.failure("It broke for {c}", c="me", channel_id=OWNER)
        [entry] = self.entries()
        self.assertEqual(entry["level"], 50)
        self.assertEqual(entry["message"], "It broke for me")
        exception = entry["exception"]
        self.assertEqual(exception["class"], "<class 'ValueError'>")
        self.assertEqual(exception["instance"], "ValueError('boom http://u:***@h/')")
        self.assertIsInstance(exception["stack"], list)
        self.assertTrue(all(isinstance(line, str) for line in exception["stack"]))
        self.assertTrue(any("test_failure" in line for line in exception["stack"]))
        self.assertNotIn("hunter2", (self.directory / OWNER).read_text())

    def test_failure_without_message(self) -> None:
        self.observe()
        try:
            1 / 0  # noqa: B018
        except ZeroDivisionError:
            self.log.failure("", level=LogLevel.error, router_id=OWNER)
        [entry] = self.entries()
        self.assertEqual(entry["level"], 40)
        self.assertEqual(entry["message"], "Unhandled Error")
        self.assertEqual(entry["exception"]["class"], "<class 'ZeroDivisionError'>")

    def test_redacts_passwords_in_message(self) -> None:
        self.observe()
        self.log.error(
            "Post to {url} failed",
            url="https://bob:s3cret@example.org/mo",
            channel_id=OWNER,
        )
        [entry] = self.entries()
        self.assertEqual(
            entry["message"], "Post to https://bob:***@example.org/mo failed"
        )
        self.assertNotIn("s3cret", (self.directory / OWNER).read_text())

    def test_reentrant_events_dropped(self) -> None:
        self.observe()
        log = self.log

        class Noisy:
            def __format__(self, spec: str) -> str:
                log.info("nested", channel_id=OWNER)
                return "noisy"

        self.log.info("outer {n}", n=Noisy(), channel_id=OWNER)
        self.log.info("after", channel_id=OWNER)
        self.assertEqual(
            [e["message"] for e in self.entries()], ["outer noisy", "after"]
        )

    def test_stop(self) -> None:
        observer = self.observe()
        self.log.info("one", channel_id=OWNER)
        observer.stop()
        self.log.info("two", channel_id=OWNER)
        self.assertEqual([e["message"] for e in self.entries()], ["one"])
        observer.stop()  # twice is fine

    def test_restart_appends(self) -> None:
        observer = self.observe()
        self.log.info("one", channel_id=OWNER)
        observer.stop()
        observer.start()
        self.log.info("two", channel_id=OWNER)
        self.assertEqual([e["message"] for e in self.entries()], ["one", "two"])

    def test_rotation(self) -> None:
        self.observe(log_rotate_size=300, max_log_files=2)
        for i in range(30):
            self.log.info("message {i:02d}", i=i, channel_id=OWNER)
        names = sorted(p.name for p in self.directory.iterdir())
        self.assertEqual(names, [OWNER, f"{OWNER}.1", f"{OWNER}.2"])
        for name in names:
            self.assertLessEqual((self.directory / name).stat().st_size, 400)
        newest = read_logs(self.directory, OWNER, 100)
        messages = [e["message"] for e in newest]
        self.assertEqual(messages[0], "message 29")
        expected = [f"message {i:02d}" for i in range(29, 29 - len(messages), -1)]
        self.assertEqual(messages, expected)
        # More than the current file holds, fewer than all.
        self.assertEqual(
            [e["message"] for e in read_logs(self.directory, OWNER, 5)], expected[:5]
        )

    def test_unlimited_rotated_files(self) -> None:
        self.observe(log_rotate_size=50, max_log_files=0)
        for i in range(12):
            self.log.info("message {i:02d}", i=i, channel_id=OWNER)
        rotated = [p for p in self.directory.iterdir() if p.name != OWNER]
        self.assertGreater(len(rotated), 5)
        messages = [e["message"] for e in read_logs(self.directory, OWNER, 100)]
        self.assertEqual(messages, [f"message {i:02d}" for i in range(11, -1, -1)])

    def test_no_rotation(self) -> None:
        self.observe(log_rotate_size=0)
        for i in range(50):
            self.log.info("message {i:02d}", i=i, channel_id=OWNER)
        self.assertEqual([p.name for p in self.directory.iterdir()], [OWNER])

    def test_owner_logger(self) -> None:
        self.observe()
        logger = owner_logger("junebug.x", "channel_id", OWNER, observer=self.publisher)
        logger.info("tagged")
        other = owner_logger("junebug.x", "router_id", "r1", observer=self.publisher)
        other.info("not mine")
        self.assertEqual([e["message"] for e in self.entries()], ["tagged"])

    def test_bad_owner_id(self) -> None:
        for bad in ("", ".", "..", "a/b", "../x", "a\\b"):
            with self.assertRaises(ValueError):
                LogFileRouter(self.directory).add_owner(bad)
            with self.assertRaises(ValueError):
                read_logs(self.directory, bad, 1)


class RouterTests(TestCase):
    def setUp(self) -> None:
        self.directory = temp_dir(self) / "logs"
        self.publisher = LogPublisher()
        self.log = Logger(namespace="test", observer=self.publisher)

    def route(self, **kwargs: Any) -> LogFileRouter:
        router = LogFileRouter(
            self.directory, 1_000_000, 5, publisher=self.publisher, **kwargs
        )
        router.start()
        self.addCleanup(router.stop)
        return router

    def messages(self, owner: str) -> list[str]:
        return [e["message"] for e in lines_of(self.directory / owner)]

    def test_routes_by_owner_keys(self) -> None:
        self.route()
        self.log.info("to a", channel_id="a")
        self.log.info("to r", router_id="r")
        self.log.info("to both", channel_id="a", router_id="r")
        self.log.debug("too quiet", channel_id="a")
        self.log.info("nobody")
        self.log.info("bad id", channel_id="../etc")
        self.log.info("not a str", channel_id=3)
        self.assertEqual(sorted(p.name for p in self.directory.iterdir()), ["a", "r"])
        self.assertEqual(self.messages("a"), ["to a", "to both"])
        self.assertEqual(self.messages("r"), ["to r", "to both"])
        [first] = read_logs(self.directory, "r", 1)
        self.assertEqual(first["logger"], "r")

    def test_log_system_only_for_registered_owners(self) -> None:
        router = self.route()
        self.log.emit(LogLevel.info, "unregistered", log_system="s1")
        self.assertFalse(self.directory.joinpath("s1").exists())
        router.add_owner("s1")
        self.log.emit(LogLevel.info, "registered", log_system="x,s1")
        router.remove_owner("s1")
        self.log.emit(LogLevel.info, "removed", log_system="s1")
        self.assertEqual(self.messages("s1"), ["registered"])

    def test_lru_of_open_files(self) -> None:
        self.route(max_open_files=2)
        for i in range(6):
            for owner in ("a", "b", "c"):
                self.log.info("{o}{i}", o=owner, i=i, channel_id=owner)
        for owner in ("a", "b", "c"):
            self.assertEqual(self.messages(owner), [f"{owner}{i}" for i in range(6)])

    def test_stop(self) -> None:
        router = self.route()
        self.log.info("one", channel_id="a")
        router.stop()
        self.log.info("two", channel_id="a")
        self.assertEqual(self.messages("a"), ["one"])

    def test_write_failure_reported_once_elsewhere(self) -> None:
        router = self.route()
        # A directory where the file should be: opening it fails.
        (self.directory / "a").mkdir()
        seen: list[dict[str, Any]] = []
        self.publisher.addObserver(seen.append)
        self.log.info("one", channel_id="a")
        self.log.info("two", channel_id="a")
        failures = [e for e in seen if "log_failure" in e]
        self.assertEqual(len(failures), 1)
        self.assertEqual(router.owners_of(failures[0]), [])
        self.assertIsInstance(failures[0]["log_failure"].value, IsADirectoryError)
        # Writing works again once the problem is gone.
        (self.directory / "a").rmdir()
        self.log.info("three", channel_id="a")
        self.assertEqual(self.messages("a"), ["three"])


def entry(i: int) -> bytes:
    return json.dumps({"message": f"m{i}", "level": 20}).encode() + b"\n"


class ReadLogsTests(TestCase):
    def setUp(self) -> None:
        self.directory = temp_dir(self)

    def write(self, name: str, data: bytes) -> None:
        (self.directory / name).write_bytes(data)

    def messages(self, n: int, **kwargs: Any) -> list[str]:
        return [e["message"] for e in read_logs(self.directory, OWNER, n, **kwargs)]

    def test_missing_files(self) -> None:
        self.assertEqual(read_logs(self.directory, OWNER, 10), [])
        self.assertEqual(read_logs(self.directory / "nope", OWNER, 10), [])

    def test_newest_first_across_files(self) -> None:
        self.write(OWNER, entry(7) + entry(8))
        self.write(f"{OWNER}.1", entry(4) + entry(5) + entry(6))
        self.write(f"{OWNER}.2", entry(1) + entry(2) + entry(3))
        self.write(f"{OWNER}.4", entry(0))  # after a gap: not reached
        self.assertEqual(self.messages(100), [f"m{i}" for i in range(8, 0, -1)])
        self.assertEqual(self.messages(4), ["m8", "m7", "m6", "m5"])
        self.assertEqual(self.messages(1), ["m8"])

    def test_missing_current_file(self) -> None:
        self.write(f"{OWNER}.1", entry(1) + entry(2))
        self.assertEqual(self.messages(10), ["m2", "m1"])

    def test_blank_and_bad_lines_skipped(self) -> None:
        self.write(OWNER, b"\n" + entry(1) + b"  \n\n" + b"not json\n[1]\n" + entry(2))
        self.assertEqual(self.messages(10), ["m2", "m1"])

    def test_incomplete_trailing_line_ignored(self) -> None:
        self.write(OWNER, entry(1) + entry(2) + b'{"message": "m3", "le')
        for size in (1, 3, 8, 4096):
            self.assertEqual(self.messages(10, buffer_size=size), ["m2", "m1"])

    def test_only_incomplete_line(self) -> None:
        self.write(OWNER, b'{"message": "m1"}')
        self.assertEqual(self.messages(10), [])
        self.write(OWNER, b"")
        self.assertEqual(self.messages(10), [])

    def test_long_lines(self) -> None:
        long = "x" * 5000
        data = entry(1) + json.dumps({"message": long}).encode() + b"\n" + entry(3)
        self.write(OWNER, data)
        for size in (1, 2, 7, 64, 4096, 100_000):
            self.assertEqual(
                self.messages(10, buffer_size=size), ["m3", long, "m1"], size
            )

    def test_chunk_boundaries(self) -> None:
        data = b"".join(entry(i) for i in range(20))
        self.write(OWNER, data)
        expected = [f"m{i}" for i in range(19, -1, -1)]
        for size in range(1, len(entry(0)) * 2 + 3):
            self.assertEqual(self.messages(100, buffer_size=size), expected, size)

    def test_non_ascii(self) -> None:
        self.write(
            OWNER,
            json.dumps({"message": "héllo ☃"}, ensure_ascii=False).encode() + b"\n",
        )
        self.assertEqual(self.messages(10, buffer_size=3), ["héllo ☃"])

    def test_n_must_be_positive(self) -> None:
        with self.assertRaises(ValueError):
            read_logs(self.directory, OWNER, 0)

    async def test_async(self) -> None:
        self.write(OWNER, entry(1) + entry(2))
        entries = await read_logs_async(reactor, self.directory, OWNER, 5)
        self.assertEqual([e["message"] for e in entries], ["m2", "m1"])
