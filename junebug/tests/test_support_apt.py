"""The tests' package installer is safe for test processes side by side
(``pytest -n``): one install at a time on the machine, under a file lock
polled on the reactor (junebug.tests.support.apt).  A task.Clock drives the
polling; no package is installed."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase

from junebug.tests.support import apt


class LockError(RuntimeError):
    pass


class MachineLockTests(TestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.path = Path(tempfile.mkdtemp(prefix="jb-apt-lock-")) / "lock"
        self.events: list[str] = []

    async def hold(self, name: str, until: Deferred[None]) -> None:
        async with apt.machine_lock(self.clock, self.path, LockError, timeout=5):
            self.events.append(f"{name} in")
            await until
            self.events.append(f"{name} out")

    def test_one_holder_at_a_time(self) -> None:
        """A second holder (another open file, as in another process) waits,
        polling, until the first lets go."""
        first_done: Deferred[None] = Deferred()
        second_done: Deferred[None] = Deferred()
        first = ensureDeferred(self.hold("a", first_done))
        second = ensureDeferred(self.hold("b", second_done))
        self.clock.advance(1)
        self.assertEqual(self.events, ["a in"])
        first_done.callback(None)
        self.successResultOf(first)
        self.assertEqual(self.events, ["a in", "a out"])
        self.clock.advance(0.1)
        self.assertEqual(self.events, ["a in", "a out", "b in"])
        second_done.callback(None)
        self.successResultOf(second)

    def test_released_when_the_block_fails(self) -> None:
        async def failing() -> None:
            async with apt.machine_lock(self.clock, self.path, LockError):
                raise ValueError("boom")

        self.failureResultOf(ensureDeferred(failing()), ValueError)
        done: Deferred[None] = Deferred()
        held = ensureDeferred(self.hold("b", done))
        self.assertEqual(self.events, ["b in"])
        done.callback(None)
        self.successResultOf(held)

    def test_gives_up_after_the_timeout(self) -> None:
        forever: Deferred[None] = Deferred()
        first = ensureDeferred(self.hold("a", forever))
        second = ensureDeferred(self.hold("b", Deferred()))
        self.clock.pump([0.1] * 60)
        error = self.failureResultOf(second, LockError).value
        self.assertIn("still locked after 5s", str(error))
        forever.callback(None)
        self.successResultOf(first)


class AptInstallTests(TestCase):
    def test_installs_run_one_at_a_time(self) -> None:
        """Two installs asked for at once: the second starts after the first
        ends (nothing of theirs, such as policy-rc.d, overlaps)."""
        clock = Clock()
        self.patch(apt, "APT_LOCK", Path(tempfile.mkdtemp()) / "lock")
        self.patch(apt.shutil, "which", lambda name: f"/usr/bin/{name}")
        gates = {"prosody": Deferred[None](), "nginx": Deferred[None]()}
        log: list[str] = []

        async def fake_install(
            reactor: object,
            apt_get: str,
            package: str,
            error: type[Exception],
            options: Sequence[str],
        ) -> None:
            log.append(f"start {package}")
            await gates[package]
            log.append(f"end {package}")

        self.patch(apt, "_install", fake_install)
        one = ensureDeferred(apt.apt_install(clock, "prosody", LockError))
        two = ensureDeferred(apt.apt_install(clock, "nginx", LockError))
        clock.advance(1)
        self.assertEqual(log, ["start prosody"])
        gates["prosody"].callback(None)
        clock.advance(0.1)
        self.assertEqual(log, ["start prosody", "end prosody", "start nginx"])
        gates["nginx"].callback(None)
        self.successResultOf(one)
        self.successResultOf(two)
