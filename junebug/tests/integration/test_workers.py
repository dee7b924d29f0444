"""``jb --workers N`` as real processes on the test Redis and RabbitMQ: one
API port served by N workers (the kernel says which one accepted each
connection), a SIGKILLed worker replaced while the API keeps answering,
SIGTERM draining every worker to exit 0, and giving up on a config error."""

from __future__ import annotations

import os
import re
import signal
import tempfile
import time

from twisted.internet import error, reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase

from junebug.testing.polling import wait_until
from junebug.testing.rabbitmq import rabbitmq_test_settings
from junebug.testing.redis import start_redis_fixture
from junebug.tests.support.proc import child_pids, connection_owner, is_running
from junebug.tests.support.process import JbProcess

SHUTDOWN_TIMEOUT = 5.0
#: The supervisor's own allowance beyond shutdown_timeout (STOP_MARGIN).
MARGIN = 15.0
READY = "Junebug is ready"


class HeldRequest(Protocol):
    """Sends ``GET <path>`` and keeps the connection open once answered, so
    the test can ask the kernel which process accepted it."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.data = b""
        self.answered: Deferred[int] = Deferred()

    def connectionMade(self) -> None:
        assert self.transport is not None
        self.transport.write(
            f"GET {self.path} HTTP/1.1\r\nHost: jb\r\n\r\n".encode("ascii")
        )

    def dataReceived(self, data: bytes) -> None:
        self.data += data
        head, sep, body = self.data.partition(b"\r\n\r\n")
        if not sep or self.answered.called:
            return
        length = re.search(rb"(?i)content-length: *(\d+)", head)
        if length is None or len(body) >= int(length.group(1)):
            self.answered.callback(int(head.split()[1]))

    def connectionLost(self, reason: Failure | None = None) -> None:
        if not self.answered.called:
            self.answered.errback(reason or Failure(ConnectionError("closed")))


class Workers:
    """A ``jb --workers`` supervisor started by a test, on port 0."""

    def __init__(self, test: TestCase, args: list[str]) -> None:
        self.jb = JbProcess(reactor, args, 0)
        self.test = test
        self.port = 0

    async def start(self, ready: int) -> None:
        """Start it and wait until ``ready`` workers say they are ready."""
        await self.jb.start(until="starting")
        self.test.addCleanup(self.jb.kill)
        found = re.search(
            r"supervisor \(pid \d+\) is listening on [^:]+:(\d+)", self.output
        )
        assert found, self.output
        self.port = int(found.group(1))
        self.jb.base = f"http://127.0.0.1:{self.port}"
        await self.ready(ready)

    async def ready(self, count: int) -> None:
        await wait_until(lambda: self.output.count(READY) >= count, timeout=60)

    @property
    def output(self) -> str:
        return self.jb.output

    @property
    def pid(self) -> int:
        pid: int = self.jb._transport.pid
        return pid

    def workers(self) -> set[int]:
        return child_pids(self.pid)

    async def ask(self, path: str = "/health") -> tuple[int, int | None]:
        """One request on a new connection: its status, and the pid of the
        worker that accepted the connection."""
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", self.port)
        protocol = HeldRequest(path)
        await connectProtocol(endpoint, protocol)
        try:
            status = await protocol.answered.addTimeout(10, reactor)
            assert protocol.transport is not None
            client_port = protocol.transport.getHost().port
            owner = connection_owner(self.workers(), self.port, client_port)
        finally:
            assert protocol.transport is not None
            protocol.transport.loseConnection()
        return status, owner


def jb_args(prefix: str, *extra: str) -> list[str]:
    return [
        "--redis-key-prefix",
        prefix,
        "--amqp-vhost",
        rabbitmq_test_settings().vhost,
        "--logging-path",
        tempfile.mkdtemp(prefix="jb-logs-"),
        "--shutdown-timeout",
        str(SHUTDOWN_TIMEOUT),
        *extra,
    ]


class WorkersTests(TestCase):
    timeout = 180

    async def start(self, *extra: str, ready: int = 2) -> Workers:
        redis = await start_redis_fixture(self, reactor)
        workers = Workers(self, jb_args(redis.prefix, *extra))
        await workers.start(ready)
        return workers

    async def answerers(self, workers: Workers, wanted: set[int]) -> set[int]:
        """Ask on new connections until every pid in ``wanted`` answered one
        (each answer 200); the pids seen."""
        seen: set[int] = set()
        for _ in range(300):
            status, owner = await workers.ask()
            self.assertEqual(status, 200, workers.output)
            if owner is not None:
                seen.add(owner)
            if wanted <= seen:
                break
        return seen

    async def test_two_workers_serve_one_port_and_a_killed_one_is_replaced(
        self,
    ) -> None:
        """Two worker processes (not the supervisor) answer on the one port;
        after SIGKILL of one, the other keeps answering every request while
        a new worker starts, adopts the same socket and answers too."""
        workers = await self.start("--workers", "2", ready=2)
        pids = workers.workers()
        self.assertEqual(len(pids), 2, workers.output)
        self.assertNotIn(workers.pid, pids)
        self.assertEqual(await self.answerers(workers, pids), pids)

        victim, survivor = sorted(pids)
        os.kill(victim, signal.SIGKILL)
        answers: dict[int, int] = {}
        killed = f"(pid {victim}) was killed"

        def replaced() -> bool:
            _before, seen, after = workers.output.partition(killed)
            return bool(seen) and READY in after

        while not replaced():
            status, owner = await workers.ask()
            answers[status] = answers.get(status, 0) + 1
            self.assertNotEqual(owner, victim)
            self.assertLess(sum(answers.values()), 5000, workers.output)
        self.assertEqual(set(answers), {200}, answers)
        self.assertRegex(
            workers.output,
            rf"Worker \d \(pid {victim}\) was killed by SIGKILL after [\d.]+s",
        )
        now = workers.workers()
        self.assertEqual(len(now), 2, workers.output)
        self.assertIn(survivor, now)
        self.assertNotIn(victim, now)
        self.assertEqual(await self.answerers(workers, now), now)

    async def test_sigterm_drains_every_worker_and_exits_0(self) -> None:
        """``workers: auto`` runs one worker per core; SIGTERM to the
        supervisor reaches each (they log it and drain), all exit, and the
        supervisor exits 0 within shutdown_timeout and its margin; the port
        is closed.  With --log-file each worker writes a file of its own."""
        logs = tempfile.mkdtemp(prefix="jb-log-file-")
        logfile = os.path.join(logs, "jb.log")
        cores = os.cpu_count() or 1
        workers = await self.start(
            "--workers", "auto", "--log-file", logfile, ready=cores
        )
        pids = workers.workers()
        self.assertEqual(len(pids), os.cpu_count(), workers.output)
        began = time.monotonic()
        status = await workers.jb.stop(signal.SIGTERM, SHUTDOWN_TIMEOUT + MARGIN)
        self.assertEqual(status, 0, workers.output)
        self.assertLess(time.monotonic() - began, SHUTDOWN_TIMEOUT + MARGIN)
        self.assertEqual(workers.output.count("Received SIGTERM: draining"), len(pids))
        for pid in pids:
            self.assertIn(f"(pid {pid}) exited with status 0", workers.output)
        await wait_until(lambda: not any(is_running(pid) for pid in pids))
        # One log file per process, each with one writer to rotate it.
        self.assertEqual(
            sorted(os.listdir(logs)),
            ["jb.log"] + [f"jb.worker-{index}.log" for index in range(1, cores + 1)],
        )
        with open(logfile, encoding="utf-8") as handle:
            self.assertIn("Junebug supervisor", handle.read())
        with open(os.path.join(logs, "jb.worker-1.log"), encoding="utf-8") as handle:
            self.assertIn("Worker 1/", handle.read())
        with self.assertRaises(error.ConnectionRefusedError):
            await connectProtocol(
                TCP4ClientEndpoint(reactor, "127.0.0.1", workers.port),
                HeldRequest("/health"),
            )

    async def test_a_second_signal_kills_the_workers_and_exits_1(self) -> None:
        """SIGINT is SIGTERM's equal: a SIGTERM, then a SIGINT during the
        drain, SIGKILLs every worker and ends the supervisor with status 1."""
        workers = await self.start("--workers", "2", ready=2)
        pids = workers.workers()
        workers.jb.send_signal(signal.SIGTERM)
        await wait_until(lambda: "Stopping: SIGTERM to every worker" in workers.output)
        self.assertEqual(await workers.jb.stop(signal.SIGINT, 10), 1, workers.output)
        self.assertIn("Received SIGINT again: killing the workers", workers.output)
        await wait_until(lambda: not any(is_running(pid) for pid in pids))

    async def test_a_config_error_in_the_workers_ends_the_supervisor(self) -> None:
        """A channel type the workers cannot import (which the supervisor
        does not check itself: it imports no transport) ends every worker
        with status 2, and the supervisor gives up at once with status 2."""
        redis = await start_redis_fixture(self, reactor)
        workers = Workers(
            self, jb_args(redis.prefix, "--workers", "2", "--channels", "x:no.such.Mod")
        )
        await workers.jb.start(until="starting")
        self.addCleanup(workers.jb.kill)
        self.assertEqual(await workers.jb.exited(timeout=60), 2, workers.output)
        self.assertIn("Giving up: a worker found an error", workers.output)
        self.assertIn("channels.x", workers.output)

    async def test_workers_stop_when_the_supervisor_is_killed(self) -> None:
        """SIGKILL of the supervisor forwards nothing: the workers notice
        their parent has gone and stop by themselves, draining."""
        workers = await self.start("--workers", "2", ready=2)
        pids = workers.workers()
        self.assertEqual(await workers.jb.kill(), -signal.SIGKILL)
        await wait_until(
            lambda: not any(is_running(pid) for pid in pids),
            timeout=SHUTDOWN_TIMEOUT + 10,
        )
        self.assertEqual(workers.output.count("The supervisor (pid"), 2)
