"""The real-process side of ``jb --workers`` without starting ``jb``: the
socket, what a worker is started with, its role, signal forwarding, the
watch on the supervisor, and that the supervisor imports no service code."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from junebug.config import JunebugConfig, load_config
from junebug.supervisor import ExitStatus
from junebug.worker_processes import (
    LISTEN_ENV,
    SOCKET_ENV,
    WORKER_ENV,
    WORKER_SOCKET_FD,
    ProcessSpawner,
    SignalForwarder,
    WorkerRole,
    bind_api_socket,
    watch_supervisor,
    worker_role,
)


class FakeTransport:
    pid = 4242

    def __init__(self) -> None:
        self.signals: list[int] = []

    def signalProcess(self, number: int) -> None:
        self.signals.append(number)


@attrs.define
class RecordingProcessReactor:
    spawned: list[dict[str, Any]] = attrs.field(factory=list)

    def spawnProcess(
        self,
        protocol: Any,
        executable: str,
        args: Sequence[str],
        env: Mapping[str, str],
        childFDs: Mapping[int, int | str],  # noqa: N803
    ) -> FakeTransport:
        self.spawned.append(
            {
                "protocol": protocol,
                "executable": executable,
                "args": list(args),
                "env": dict(env),
                "fds": dict(childFDs),
            }
        )
        return FakeTransport()


class SocketTests(SynchronousTestCase):
    def test_port_0_binds_a_free_port_children_can_inherit(self) -> None:
        sock = bind_api_socket("127.0.0.1", 0)
        self.addCleanup(sock.close)
        host, port = sock.getsockname()
        self.assertEqual(host, "127.0.0.1")
        self.assertNotEqual(port, 0)
        self.assertTrue(sock.get_inheritable())
        self.assertEqual(sock.family, socket.AF_INET)
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass  # the kernel accepts into the backlog at once

    def test_ipv6_interface(self) -> None:
        sock = bind_api_socket("::1", 0)
        self.addCleanup(sock.close)
        self.assertEqual(sock.family, socket.AF_INET6)

    def test_a_port_in_use_is_an_error(self) -> None:
        sock = bind_api_socket("127.0.0.1", 0)
        self.addCleanup(sock.close)
        with self.assertRaises(OSError):
            bind_api_socket("127.0.0.1", sock.getsockname()[1])


class SpawnerTests(SynchronousTestCase):
    def spawner(self) -> tuple[ProcessSpawner, RecordingProcessReactor]:
        sock = bind_api_socket("127.0.0.1", 0)
        self.addCleanup(sock.close)
        reactor = RecordingProcessReactor()
        environ = {"JUNEBUG_REDIS_DB": "3", LISTEN_ENV: "stale"}
        spawner = ProcessSpawner(
            reactor,  # type: ignore[arg-type]
            ["--workers", "2", "-c", "jb.yaml"],
            environ,
            sock,
            2,
        )
        return spawner, reactor

    def test_a_worker_is_jb_with_the_same_arguments_and_the_socket_as_fd_3(
        self,
    ) -> None:
        spawner, reactor = self.spawner()
        ended: list[ExitStatus] = []
        worker = spawner(2, ended.append, replacing=False)
        (spawned,) = reactor.spawned
        self.assertEqual(spawned["executable"], sys.executable)
        self.assertEqual(
            spawned["args"],
            [sys.executable, "-m", "junebug", "--workers", "2", "-c", "jb.yaml"],
        )
        self.assertEqual(
            spawned["fds"],
            {0: "w", 1: 1, 2: 2, WORKER_SOCKET_FD: spawner.sock.fileno()},
        )
        env = spawned["env"]
        self.assertEqual(env["JUNEBUG_REDIS_DB"], "3")
        self.assertEqual(env[WORKER_ENV], f"2/2/{os.getpid()}")
        self.assertEqual(env[SOCKET_ENV], "3:INET")
        self.assertNotIn(LISTEN_ENV, env)
        self.assertEqual(worker.pid, 4242)
        worker.signal(signal.SIGTERM)
        self.assertEqual(worker.transport.signals, [signal.SIGTERM])  # type: ignore[attr-defined]

    def test_a_replacing_worker_listens_once_ready(self) -> None:
        spawner, reactor = self.spawner()
        spawner(1, lambda status: None, replacing=True)
        env = reactor.spawned[0]["env"]
        self.assertEqual(
            worker_role(env), WorkerRole(1, 2, os.getpid(), 3, socket.AF_INET, True)
        )

    def test_the_end_is_reported_with_code_or_signal(self) -> None:
        from twisted.internet.error import ProcessDone, ProcessTerminated
        from twisted.python.failure import Failure

        spawner, reactor = self.spawner()
        ended: list[ExitStatus] = []
        spawner(1, ended.append, replacing=False)
        protocol = reactor.spawned[0]["protocol"]
        protocol.processEnded(Failure(ProcessTerminated(signal=9)))
        protocol.processEnded(Failure(ProcessDone(0)))
        self.assertEqual(ended, [ExitStatus(signal=9), ExitStatus(code=0)])


class RoleTests(SynchronousTestCase):
    def test_no_role_without_the_variable(self) -> None:
        self.assertIsNone(worker_role({}))

    def test_role(self) -> None:
        role = worker_role({WORKER_ENV: "3/4/77", SOCKET_ENV: "3:INET6"})
        self.assertEqual(role, WorkerRole(3, 4, 77, 3, socket.AF_INET6, False))
        assert role is not None
        self.assertEqual(role.describe(), "3/4")

    def test_each_worker_has_its_own_log_file(self) -> None:
        role = WorkerRole(2, 4, 77, 3, socket.AF_INET6)
        self.assertEqual(role.logfile("/var/log/jb.log"), "/var/log/jb.worker-2.log")
        self.assertEqual(role.logfile("/var/log/jb"), "/var/log/jb.worker-2")
        self.assertEqual(role.logfile("logs.d/jb"), "logs.d/jb.worker-2")
        self.assertEqual(role.logfile(".jblog"), ".jblog.worker-2")

    def test_bad_roles(self) -> None:
        for environ in (
            {WORKER_ENV: "x/4/7", SOCKET_ENV: "3:INET"},
            {WORKER_ENV: "1/4", SOCKET_ENV: "3:INET"},
            {WORKER_ENV: "1/4/7"},
            {WORKER_ENV: "1/4/7", SOCKET_ENV: "3:UNIX"},
        ):
            with self.assertRaises(ValueError):
                worker_role(environ)


class FakeReactor(Clock):
    def __init__(self) -> None:
        super().__init__()
        self.stopped = 0

    def callFromThread(
        self, f: Callable[..., Any], *args: object, **kwargs: object
    ) -> None:
        f(*args, **kwargs)

    def stop(self) -> None:
        self.stopped += 1


@attrs.define
class FakeSupervisor:
    calls: list[str] = attrs.field(factory=list)

    def stop(self) -> None:
        self.calls.append("stop")

    def kill(self) -> None:
        self.calls.append("kill")


class SignalForwarderTests(SynchronousTestCase):
    def test_first_signal_stops_the_next_kills(self) -> None:
        """SIGTERM or SIGINT: the first stops the workers, any next kills."""
        supervisor = FakeSupervisor()
        forwarder = SignalForwarder(FakeReactor(), supervisor)  # type: ignore[arg-type]
        forwarder(signal.SIGINT)
        self.assertEqual(supervisor.calls, ["stop"])
        forwarder(signal.SIGTERM)
        forwarder(signal.SIGTERM)
        self.assertEqual(supervisor.calls, ["stop", "kill", "kill"])


class WatchSupervisorTests(SynchronousTestCase):
    def test_stops_once_the_parent_changes(self) -> None:
        reactor = FakeReactor()
        parent = [100]
        watching = watch_supervisor(reactor, 100, lambda: parent[0])  # type: ignore[arg-type]
        reactor.advance(5)
        self.assertEqual(reactor.stopped, 0)
        parent[0] = 1  # re-parented to init
        reactor.advance(1)
        self.assertEqual(reactor.stopped, 1)
        self.assertFalse(watching.running)
        reactor.advance(5)
        self.assertEqual(reactor.stopped, 1)


class ConfigTests(SynchronousTestCase):
    def test_workers_values(self) -> None:
        self.assertEqual(JunebugConfig().worker_count, 1)
        self.assertEqual(load_config(None, {}, {"workers": 3}).worker_count, 3)
        self.assertEqual(load_config(None, {"JUNEBUG_WORKERS": "4"}, {}).workers, 4)

    def test_auto_is_the_number_of_cores(self) -> None:
        config = load_config(None, {"JUNEBUG_WORKERS": "auto"}, {})
        self.assertEqual(config.workers, "auto")
        self.assertEqual(config.worker_count, os.cpu_count())


class LightSupervisorTests(SynchronousTestCase):
    def test_the_supervisor_imports_no_service_code(self) -> None:
        """What the supervisor process loads leaves out the service, the
        backends' clients and the transports."""
        code = (
            "import sys, junebug.cli, junebug.worker_processes, "
            "junebug.logging_setup; "
            "print(' '.join(sorted(sys.modules)))"
        )
        loaded = set(
            subprocess.run(
                [sys.executable, "-c", code],
                capture_output=True,
                text=True,
                check=True,
                timeout=60,
            ).stdout.split()
        )
        for heavy in (
            "junebug.service",
            "junebug.runner",
            "junebug.api.app",
            "junebug.stores.redis",
            "junebug.amqp.rabbitmq",
            "junebug.transports.registry",
            "txamqp",
            "klein",
        ):
            self.assertNotIn(heavy, loaded)
