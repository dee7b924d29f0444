"""The supervisor of ``jb --workers N``: keeps N worker processes running.

It decides only; starting processes is a :class:`Spawner` it is given (real
ones in :mod:`junebug.worker_processes`, fakes in the tests) and time is an
``IReactorTime`` (``task.Clock`` in the tests).  The rules:

* A worker that ends while the supervisor is not stopping is started again
  after a back-off: :attr:`Backoff.initial` seconds, doubled for each start in
  a row that ended within :attr:`Backoff.stable_after` seconds, at most
  :attr:`Backoff.longest`; a worker that ran longer starts the series again.
* The supervisor gives up (stops the others and ends with status 1) when one
  worker has failed :attr:`Backoff.give_up_after` starts in a row, and at once
  (status 2) when a worker exits with status 2, ``jb``'s usage and config
  error: its config cannot get better by trying again.
* :meth:`Supervisor.stop` (the first SIGTERM or SIGINT) sends SIGTERM to every
  worker, which drains, and ends with status 0 once all have exited 0 (or were
  killed by that SIGTERM, before they could handle it), or 1 if one did not,
  or if some are still running ``deadline`` seconds later (those get SIGKILL).
  :meth:`Supervisor.kill` (a second signal) sends SIGKILL to every worker and
  ends with status 1 at once.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import Protocol

import attrs
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

#: ``jb``'s exit status for a usage or configuration error (junebug.command).
CONFIG_ERROR_STATUS = 2


@attrs.frozen
class ExitStatus:
    """How a worker process ended: its exit code, or the signal that killed it
    (neither: it could not be started)."""

    code: int | None = None
    signal: int | None = None

    @property
    def clean(self) -> bool:
        return self.code == 0 and self.signal is None

    def describe(self) -> str:
        if self.code is None and self.signal is None:
            return "could not be started"
        if self.signal is not None:
            try:
                name = signal.Signals(self.signal).name
            except ValueError:
                name = f"signal {self.signal}"
            return f"was killed by {name}"
        return f"exited with status {self.code}"


class WorkerProcess(Protocol):
    """A started worker: its pid, and a way to signal it."""

    @property
    def pid(self) -> int | None: ...

    def signal(self, number: int) -> None: ...


class Spawner(Protocol):
    """Starts worker ``index`` (1 to N); ``ended`` is called once when it ends.
    ``replacing`` is true when it replaces one that died (the others are
    serving meanwhile, so it should take requests only once ready)."""

    def __call__(
        self, index: int, ended: Callable[[ExitStatus], None], *, replacing: bool
    ) -> WorkerProcess: ...


@attrs.frozen
class Backoff:
    """When a worker that died is started again, and when to give up."""

    initial: float = 0.5
    longest: float = 30.0
    stable_after: float = 10.0
    give_up_after: int = 5

    def delay(self, failures: int) -> float:
        """Seconds before the next start after ``failures`` quick ends in a row
        (none: the worker had run a while)."""
        return float(min(self.longest, self.initial * 2 ** max(0, failures - 1)))


@attrs.define(eq=False)
class _Slot:
    index: int
    process: WorkerProcess | None = None
    pid: int | None = None
    started: float = 0.0
    failures: int = 0
    restart: IDelayedCall | None = None


@attrs.define(eq=False)
class Supervisor:
    """Runs ``count`` workers until stopped; ``done`` gets the exit status."""

    clock: IReactorTime
    spawn: Spawner
    count: int
    done: Callable[[int], object]
    #: Seconds the workers get to drain after :meth:`stop` before SIGKILL.
    deadline: float = 40.0
    backoff: Backoff = attrs.field(factory=Backoff)
    #: Called once as the stop begins: no worker will be started again, so
    #: the supervisor's copy of the API socket can close (the port closes
    #: when the last worker has closed its own).
    release: Callable[[], object] = lambda: None
    log = Logger()
    stopping: bool = attrs.field(default=False, init=False)
    _slots: list[_Slot] = attrs.field(factory=list, init=False)
    _status: int = attrs.field(default=0, init=False)
    _finished: bool = attrs.field(default=False, init=False)
    _deadline_call: IDelayedCall | None = attrs.field(default=None, init=False)

    def start(self) -> None:
        """Start every worker."""
        self._slots = [_Slot(index) for index in range(1, self.count + 1)]
        for slot in self._slots:
            self._start(slot)

    @property
    def pids(self) -> list[int]:
        """The pids of the workers running now."""
        return [
            slot.process.pid
            for slot in self._slots
            if slot.process is not None and slot.process.pid is not None
        ]

    def _start(self, slot: _Slot, replacing: bool = False) -> None:
        slot.restart = None
        slot.started = self.clock.seconds()
        slot.pid = None
        try:
            slot.process = self.spawn(
                slot.index,
                lambda status: self._ended(slot, status),
                replacing=replacing,
            )
        except Exception:
            self.log.failure("Could not start worker {index}", index=slot.index)
            self._ended(slot, ExitStatus())
            return
        slot.pid = slot.process.pid
        self.log.info(
            "Started worker {index}/{count} (pid {pid})",
            index=slot.index,
            count=self.count,
            pid=slot.pid,
        )

    def _ended(self, slot: _Slot, status: ExitStatus) -> None:
        slot.process = None
        pid = slot.pid
        if self.stopping:
            # Killed by the SIGTERM sent: it had not started serving yet.
            asked = status.signal == signal.SIGTERM
            if not (status.clean or asked) and self._status == 0:
                self._status = 1
            self.log.info(
                "Worker {index} (pid {pid}) {how}",
                index=slot.index,
                pid=pid,
                how=status.describe(),
            )
            self._finish_when_all_ended()
            return
        ran = self.clock.seconds() - slot.started
        quick = ran < self.backoff.stable_after
        slot.failures = slot.failures + 1 if quick else 0
        self.log.error(
            "Worker {index} (pid {pid}) {how} after {ran:.1f}s",
            index=slot.index,
            pid=pid,
            how=status.describe(),
            ran=ran,
        )
        if status.code == CONFIG_ERROR_STATUS:
            self._give_up(
                CONFIG_ERROR_STATUS, "a worker found an error in the configuration"
            )
            return
        if slot.failures >= self.backoff.give_up_after:
            self._give_up(
                1,
                f"worker {slot.index} ended within "
                f"{self.backoff.stable_after:g}s of starting "
                f"{slot.failures} times in a row",
            )
            return
        delay = self.backoff.delay(slot.failures)
        self.log.info(
            "Starting worker {index} again in {delay:g}s", index=slot.index, delay=delay
        )
        slot.restart = self.clock.callLater(delay, self._start, slot, True)

    def _give_up(self, status: int, reason: str) -> None:
        self.log.critical("Giving up: {reason}", reason=reason)
        self._stop(status)

    def stop(self) -> None:
        """Drain: SIGTERM every worker, and finish once all have ended."""
        if self.stopping:
            return
        self.log.info(
            "Stopping: SIGTERM to every worker; they get {deadline:g}s to drain",
            deadline=self.deadline,
        )
        self._stop(0)

    def _stopping(self) -> None:
        if not self.stopping:
            self.stopping = True
            self.release()

    def _stop(self, status: int) -> None:
        self._stopping()
        self._status = status
        for slot in self._slots:
            if slot.restart is not None:
                slot.restart.cancel()
                slot.restart = None
        self._signal_all(signal.SIGTERM)
        self._deadline_call = self.clock.callLater(self.deadline, self._too_slow)
        self._finish_when_all_ended()

    def _too_slow(self) -> None:
        self._deadline_call = None
        self.log.error(
            "Workers {pids} still running {deadline:g}s after SIGTERM: SIGKILL",
            pids=self.pids,
            deadline=self.deadline,
        )
        self._status = 1
        self._signal_all(signal.SIGKILL)

    def kill(self) -> None:
        """SIGKILL every worker and finish with status 1 at once."""
        self.log.warn("Stopping now: SIGKILL to every worker")
        self._stopping()
        self._signal_all(signal.SIGKILL)
        self._status = 1
        self._finish()

    def _signal_all(self, number: int) -> None:
        for slot in self._slots:
            if slot.process is not None:
                slot.process.signal(number)

    def _finish_when_all_ended(self) -> None:
        if all(slot.process is None for slot in self._slots):
            self._finish()

    def _finish(self) -> None:
        if self._finished:
            return
        self._finished = True
        if self._deadline_call is not None and self._deadline_call.active():
            self._deadline_call.cancel()
        self._deadline_call = None
        for slot in self._slots:
            if slot.restart is not None:
                slot.restart.cancel()
                slot.restart = None
        self.done(self._status)
