"""The supervisor's rules on a Clock with fake worker processes: restart with
a back-off that resets, giving up, and stopping (junebug.supervisor)."""

from __future__ import annotations

import signal
from collections.abc import Callable

import attrs
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from junebug.supervisor import Backoff, ExitStatus, Supervisor

KILLED = ExitStatus(signal=signal.SIGKILL)
CLEAN = ExitStatus(code=0)


@attrs.define(eq=False)
class FakeWorker:
    index: int
    replacing: bool
    pid: int | None
    ended: Callable[[ExitStatus], None]
    signals: list[int] = attrs.field(factory=list)
    alive: bool = True

    def signal(self, number: int) -> None:
        self.signals.append(number)

    def end(self, status: ExitStatus) -> None:
        assert self.alive
        self.alive = False
        self.ended(status)


@attrs.define(eq=False)
class FakeSpawner:
    started: list[FakeWorker] = attrs.field(factory=list)
    broken: bool = False

    def __call__(
        self, index: int, ended: Callable[[ExitStatus], None], *, replacing: bool
    ) -> FakeWorker:
        if self.broken:
            raise OSError("too many open files")
        worker = FakeWorker(index, replacing, 1000 + len(self.started), ended)
        self.started.append(worker)
        return worker

    def running(self) -> list[FakeWorker]:
        return [worker for worker in self.started if worker.alive]

    def current(self, index: int) -> FakeWorker:
        return [w for w in self.running() if w.index == index][-1]


class SupervisorTests(SynchronousTestCase):
    def supervisor(
        self, count: int = 2, backoff: Backoff | None = None
    ) -> tuple[Supervisor, FakeSpawner, Clock, list[int]]:
        clock = Clock()
        spawner = FakeSpawner()
        statuses: list[int] = []
        self.released = 0

        def release() -> None:
            self.released += 1

        supervisor = Supervisor(
            clock=clock,
            spawn=spawner,
            count=count,
            done=statuses.append,
            deadline=40.0,
            backoff=backoff or Backoff(),
            release=release,
        )
        supervisor.start()
        return supervisor, spawner, clock, statuses

    def test_starts_every_worker(self) -> None:
        supervisor, spawner, _clock, statuses = self.supervisor(count=3)
        self.assertEqual([w.index for w in spawner.started], [1, 2, 3])
        self.assertFalse(any(w.replacing for w in spawner.started))
        self.assertEqual(supervisor.pids, [1000, 1001, 1002])
        self.assertEqual(statuses, [])

    def test_a_worker_that_dies_is_started_again_after_a_growing_delay(self) -> None:
        """Quick deaths in a row double the delay (0.5, 1, 2 s...); the other
        worker is left alone."""
        supervisor, spawner, clock, statuses = self.supervisor()
        other = spawner.current(2)
        delays = []
        for _ in range(4):
            spawner.current(1).end(KILLED)
            self.assertEqual(len(spawner.running()), 1)
            before = len(spawner.started)
            waited = 0.0
            while len(spawner.started) == before:
                clock.advance(0.25)
                waited += 0.25
            delays.append(waited)
            clock.advance(1)  # it runs a moment, then dies again
        self.assertEqual(delays, [0.5, 1.0, 2.0, 4.0])
        self.assertEqual([w.replacing for w in spawner.started[2:]], [True] * 4)
        self.assertTrue(other.alive)
        self.assertEqual(other.signals, [])
        self.assertEqual(statuses, [])
        self.assertEqual(len(supervisor.pids), 2)

    def test_the_delay_resets_after_a_worker_ran_a_while(self) -> None:
        _supervisor, spawner, clock, _statuses = self.supervisor(count=1)
        for _ in range(3):
            spawner.current(1).end(KILLED)
            clock.advance(10)
        clock.advance(Backoff().stable_after)  # it runs long enough
        spawner.current(1).end(KILLED)
        before = len(spawner.started)
        clock.advance(0.5)
        self.assertEqual(len(spawner.started), before + 1)

    def test_the_delay_stops_growing(self) -> None:
        backoff = Backoff(initial=1, longest=3, give_up_after=100)
        _supervisor, spawner, clock, _statuses = self.supervisor(1, backoff)
        for _ in range(6):
            spawner.current(1).end(KILLED)
            clock.advance(3)
        spawner.current(1).end(KILLED)
        before = len(spawner.started)
        clock.advance(2.9)
        self.assertEqual(len(spawner.started), before)
        clock.advance(0.1)
        self.assertEqual(len(spawner.started), before + 1)

    def test_gives_up_when_a_worker_keeps_failing_at_start(self) -> None:
        """Five quick deaths in a row: the others get SIGTERM, and once they
        are gone the supervisor ends with status 1 (no restart loop)."""
        _supervisor, spawner, clock, statuses = self.supervisor()
        other = spawner.current(2)
        for _ in range(4):
            spawner.current(1).end(ExitStatus(code=1))
            clock.advance(30)
        spawner.current(1).end(ExitStatus(code=1))
        self.assertEqual(other.signals, [signal.SIGTERM])
        self.assertEqual(statuses, [])
        other.end(CLEAN)
        self.assertEqual(statuses, [1])
        before = len(spawner.started)
        clock.advance(3600)
        self.assertEqual(len(spawner.started), before)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_all_failing_at_start_gives_up_within_seconds(self) -> None:
        """Every worker dying at once at each start (a bad config) ends the
        supervisor with status 1 after the back-off series, 7.5 s here."""
        _supervisor, spawner, clock, statuses = self.supervisor(count=3)
        elapsed = 0.0
        while not statuses:
            for worker in spawner.running():
                worker.end(ExitStatus(code=1))
            clock.advance(0.5)
            elapsed += 0.5
            self.assertLess(elapsed, 60)
        self.assertEqual(statuses, [1])
        self.assertEqual(elapsed, 8.0)  # 0.5 + 0.5 + 1 + 2 + 4, then the fifth
        self.assertEqual(len(spawner.started), 3 * 5)

    def test_a_config_error_gives_up_at_once_with_status_2(self) -> None:
        _supervisor, spawner, _clock, statuses = self.supervisor()
        spawner.current(1).end(ExitStatus(code=2))
        self.assertEqual(spawner.current(2).signals, [signal.SIGTERM])
        spawner.current(2).end(ExitStatus(code=2))
        self.assertEqual(statuses, [2])

    def test_stop_forwards_sigterm_and_finishes_0_when_all_exit(self) -> None:
        supervisor, spawner, clock, statuses = self.supervisor()
        first, second = spawner.running()
        self.assertEqual(self.released, 0)
        supervisor.stop()
        self.assertEqual(self.released, 1)  # its copy of the socket closes
        self.assertEqual(first.signals, [signal.SIGTERM])
        self.assertEqual(second.signals, [signal.SIGTERM])
        first.end(CLEAN)
        clock.advance(5)
        self.assertEqual(statuses, [])
        second.end(CLEAN)
        self.assertEqual(statuses, [0])
        self.assertEqual(clock.getDelayedCalls(), [])
        self.assertEqual(len(spawner.started), 2)  # nothing restarted

    def test_a_worker_killed_by_the_sigterm_sent_is_a_clean_end(self) -> None:
        """A worker still importing when SIGTERM comes dies of it: that is
        the stop asked for, not a failure."""
        supervisor, spawner, _clock, statuses = self.supervisor()
        first, second = spawner.running()
        supervisor.stop()
        first.end(ExitStatus(signal=signal.SIGTERM))
        second.end(CLEAN)
        self.assertEqual(statuses, [0])

    def test_stop_cancels_a_pending_restart(self) -> None:
        supervisor, spawner, clock, statuses = self.supervisor()
        spawner.current(1).end(KILLED)
        supervisor.stop()
        spawner.current(2).end(CLEAN)
        self.assertEqual(statuses, [0])
        clock.advance(60)
        self.assertEqual(len(spawner.started), 2)

    def test_a_worker_failing_its_drain_makes_status_1(self) -> None:
        supervisor, spawner, _clock, statuses = self.supervisor()
        first, second = spawner.running()
        supervisor.stop()
        first.end(ExitStatus(code=1))
        second.end(CLEAN)
        self.assertEqual(statuses, [1])

    def test_workers_still_running_at_the_deadline_get_sigkill(self) -> None:
        supervisor, spawner, clock, statuses = self.supervisor()
        first, second = spawner.running()
        supervisor.stop()
        first.end(CLEAN)
        clock.advance(39.9)
        self.assertEqual(second.signals, [signal.SIGTERM])
        clock.advance(0.1)
        self.assertEqual(second.signals, [signal.SIGTERM, signal.SIGKILL])
        second.end(KILLED)
        self.assertEqual(statuses, [1])

    def test_kill_sends_sigkill_and_finishes_1_at_once(self) -> None:
        """A second signal: SIGKILL to every worker, status 1 without waiting."""
        supervisor, spawner, clock, statuses = self.supervisor()
        first, second = spawner.running()
        supervisor.stop()
        supervisor.kill()
        self.assertEqual(first.signals, [signal.SIGTERM, signal.SIGKILL])
        self.assertEqual(second.signals, [signal.SIGTERM, signal.SIGKILL])
        self.assertEqual(statuses, [1])
        self.assertEqual(clock.getDelayedCalls(), [])
        self.assertEqual(self.released, 1)
        first.end(KILLED)
        second.end(KILLED)
        self.assertEqual(statuses, [1])

    def test_a_worker_that_cannot_be_spawned_counts_as_a_quick_failure(
        self,
    ) -> None:
        supervisor, spawner, clock, statuses = self.supervisor(count=1)
        spawner.current(1).end(KILLED)
        spawner.broken = True
        for _ in range(10):
            clock.advance(30)
        self.assertEqual(statuses, [1])
        self.assertEqual(supervisor.pids, [])
        # the SIGKILL was the first quick failure, four failed spawns the rest
        self.assertEqual(len(self.flushLoggedErrors(OSError)), 4)

    def test_exit_status_descriptions(self) -> None:
        self.assertEqual(ExitStatus().describe(), "could not be started")
        self.assertEqual(KILLED.describe(), "was killed by SIGKILL")
        self.assertEqual(ExitStatus(code=3).describe(), "exited with status 3")
        self.assertTrue(CLEAN.clean)
        self.assertFalse(ExitStatus(code=0, signal=9).clean)
