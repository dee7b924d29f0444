"""``jb --workers N`` on a real machine: one API socket, N ``jb`` processes.

The supervisor binds the API socket once (``interface`` and ``port``; port 0
picks a free one, logged) and starts N workers: the same Python running
``-m junebug`` with the same arguments, working directory and environment,
plus :data:`WORKER_ENV` (``<index>/<count>/<supervisor pid>``, which makes
``jb`` a worker whatever ``workers`` says), :data:`SOCKET_ENV` (``3:INET``:
the socket, inherited as file descriptor 3, which the worker adopts with
``adoptStreamPort`` instead of listening itself) and, for a worker replacing
one that died, :data:`LISTEN_ENV`.  The kernel hands each new connection to
one of the workers accepting on it.  The supervisor keeps its copy open for
as long as it runs, so a worker started again after dying adopts the same
socket and the port never closes.  The supervisor imports neither the
service nor Redis or RabbitMQ code: it only starts, watches and signals
processes (the rules are :mod:`junebug.supervisor`'s).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
from collections.abc import Callable, Mapping, Sequence
from types import FrameType
from typing import Any

import attrs
from twisted.internet.abstract import isIPv6Address
from twisted.internet.defer import Deferred
from twisted.internet.error import ProcessExitedAlready
from twisted.internet.interfaces import IProcessTransport, IReactorProcess
from twisted.internet.protocol import ProcessProtocol
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure
from typing_extensions import override

from junebug.config import JunebugConfig
from junebug.reactors import JunebugReactor
from junebug.supervisor import ExitStatus, Supervisor

log = Logger()

#: ``<index>/<count>/<pid>``: this ``jb`` is worker ``index`` of ``count``,
#: started by the supervisor with that pid.
WORKER_ENV = "JUNEBUG_WORKER"
#: ``<fd>:INET`` or ``<fd>:INET6``: the API socket a worker inherited.
SOCKET_ENV = "JUNEBUG_WORKER_SOCKET"
#: Set to ``when-ready`` for a worker that replaces one that died: the others
#: serve meanwhile, so it adopts the socket only once it has started (a
#: worker started with the others adopts it at once and answers 503 until
#: ready, as a single ``jb`` does).
LISTEN_ENV = "JUNEBUG_WORKER_LISTEN"
WHEN_READY = "when-ready"
#: The file descriptor the API socket has in a worker.
WORKER_SOCKET_FD = 3
#: Seconds between a worker's checks that its supervisor is still there.
SUPERVISOR_CHECK_INTERVAL = 1.0
#: Seconds the supervisor waits for draining workers beyond ``shutdown_timeout``
#: (their own start-up, stopping channels, closing connections).
STOP_MARGIN = 15.0


@attrs.frozen
class WorkerRole:
    """What the supervisor told a worker: which one it is, and the file
    descriptor and address family of the API socket it inherited."""

    index: int
    count: int
    supervisor: int
    fileno: int
    family: socket.AddressFamily
    listen_when_ready: bool = False

    def describe(self) -> str:
        return f"{self.index}/{self.count}"

    def logfile(self, path: str) -> str:
        """This worker's own log file beside the supervisor's ``path``
        (``jb.log`` is ``jb.worker-2.log``): each file has one writer, which
        rotates it."""
        stem, dot, suffix = path.rpartition(".")
        if not dot or not stem or "/" in suffix:
            return f"{path}.worker-{self.index}"
        return f"{stem}.worker-{self.index}.{suffix}"


_FAMILIES = {"INET": socket.AF_INET, "INET6": socket.AF_INET6}


def worker_role(environ: Mapping[str, str]) -> WorkerRole | None:
    """The role :data:`WORKER_ENV` and :data:`SOCKET_ENV` give, or None when
    this ``jb`` was not started by a supervisor."""
    value = environ.get(WORKER_ENV)
    if not value:
        return None
    numbers = value.split("/")
    fileno, _, family = environ.get(SOCKET_ENV, "").partition(":")
    if (
        len(numbers) != 3
        or not all(number.isdigit() for number in (*numbers, fileno))
        or family not in _FAMILIES
    ):
        raise ValueError(
            f"{WORKER_ENV}={value!r} needs <index>/<count>/<supervisor pid>, "
            f"and {SOCKET_ENV} <fd>:INET or <fd>:INET6"
        )
    index, count, supervisor = (int(number) for number in numbers)
    return WorkerRole(
        index,
        count,
        supervisor,
        int(fileno),
        _FAMILIES[family],
        listen_when_ready=environ.get(LISTEN_ENV) == WHEN_READY,
    )


def bind_api_socket(
    interface: str, port: int, backlog: int = 50, *, reuse_port: bool = False
) -> socket.socket:
    """The API's listening socket, bound as Twisted's ``listenTCP`` would
    (IPv6 if ``interface`` is an IPv6 address), inheritable by children.
    ``reuse_port``: every worker binds the same port itself (SO_REUSEPORT),
    for the ports a supervisor does not share out (``dialect_port``)."""
    family = socket.AF_INET6 if isIPv6Address(interface) else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((interface, port))
        sock.listen(backlog)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    sock.set_inheritable(True)
    return sock


def socket_env(sock: socket.socket) -> str:
    """The :data:`SOCKET_ENV` value for a worker given ``sock`` as fd 3."""
    family = "INET6" if sock.family == socket.AF_INET6 else "INET"
    return f"{WORKER_SOCKET_FD}:{family}"


class _WorkerProtocol(ProcessProtocol):
    def __init__(self, ended: Callable[[ExitStatus], None]) -> None:
        self._ended = ended

    @override
    def connectionMade(self) -> None:
        assert self.transport is not None
        self.transport.closeStdin()

    @override
    def processEnded(self, reason: Failure) -> None:
        value = reason.value
        self._ended(
            ExitStatus(
                code=getattr(value, "exitCode", None),
                signal=getattr(value, "signal", None),
            )
        )


@attrs.frozen
class _Running:
    transport: IProcessTransport

    @property
    def pid(self) -> int | None:
        pid: int | None = self.transport.pid
        return pid

    def signal(self, number: int) -> None:
        with contextlib.suppress(ProcessExitedAlready, OSError):
            self.transport.signalProcess(number)


@attrs.frozen
class ProcessSpawner:
    """Starts ``python -m junebug <args>`` as worker ``index`` of ``count``,
    the API socket as its fd 3, its output going where the supervisor's goes."""

    reactor: IReactorProcess
    args: Sequence[str]
    environ: Mapping[str, str]
    sock: socket.socket
    count: int

    def __call__(
        self, index: int, ended: Callable[[ExitStatus], None], *, replacing: bool
    ) -> _Running:
        env = {
            **self.environ,
            WORKER_ENV: f"{index}/{self.count}/{os.getpid()}",
            SOCKET_ENV: socket_env(self.sock),
        }
        if replacing:
            env[LISTEN_ENV] = WHEN_READY
        else:
            env.pop(LISTEN_ENV, None)
        argv = [sys.executable, "-m", "junebug", *self.args]
        transport = self.reactor.spawnProcess(
            _WorkerProtocol(ended),
            sys.executable,
            argv,
            env=env,
            childFDs={0: "w", 1: 1, 2: 2, WORKER_SOCKET_FD: self.sock.fileno()},
        )
        return _Running(transport)


@attrs.define(eq=False)
class SignalForwarder:
    """SIGTERM and SIGINT for the supervisor: the first stops the workers
    gracefully, the next kills them (called as :func:`signal.signal` does)."""

    reactor: JunebugReactor
    supervisor: Supervisor
    received: int = 0

    def __call__(self, number: int, frame: FrameType | None = None) -> None:
        self.received += 1
        name = signal.Signals(number).name
        if self.received == 1:
            log.info(
                "Received {name}: stopping the workers (another one kills them)",
                name=name,
            )
            self.reactor.callFromThread(self.supervisor.stop)
        else:
            log.warn("Received {name} again: killing the workers", name=name)
            self.reactor.callFromThread(self.supervisor.kill)

    def install(self) -> None:
        """Replace the reactor's handlers (call once it runs)."""
        signal.signal(signal.SIGTERM, self)
        signal.signal(signal.SIGINT, self)


def watch_supervisor(
    reactor: JunebugReactor,
    supervisor_pid: int,
    parent_pid: Callable[[], int] = os.getppid,
) -> LoopingCall:
    """In a worker: stop (draining, as on SIGTERM) once the supervisor has
    gone, rather than serve on as an orphan nobody watches (a SIGKILLed
    supervisor forwards nothing)."""

    def check() -> None:
        if parent_pid() != supervisor_pid:
            log.warn(
                "The supervisor (pid {pid}) has gone: stopping", pid=supervisor_pid
            )
            watching.stop()
            reactor.stop()

    watching = LoopingCall(check)
    watching.clock = reactor
    watching.start(SUPERVISOR_CHECK_INTERVAL, now=False).addErrback(
        lambda failure: log.failure("Watching the supervisor failed", failure)
    )
    return watching


def supervise(
    reactor: Any,
    config: JunebugConfig,
    sock: socket.socket,
    args: Sequence[str],
    environ: Mapping[str, str],
) -> Deferred[None]:
    """The ``task.react`` main function of a supervisor: run
    ``config.worker_count`` workers on ``sock`` until stopped; fails with
    :class:`SystemExit` if the supervisor ends with a status other than 0."""
    count = config.worker_count
    finished: Deferred[None] = Deferred()

    def done(status: int) -> None:
        sock.close()
        if status:
            finished.errback(SystemExit(status))
        else:
            finished.callback(None)

    supervisor = Supervisor(
        clock=reactor,
        spawn=ProcessSpawner(reactor, args, environ, sock, count),
        count=count,
        done=done,
        deadline=config.shutdown_timeout + STOP_MARGIN,
        release=sock.close,
    )
    forwarder = SignalForwarder(reactor, supervisor)
    host, port = sock.getsockname()[:2]
    log.info(
        "Junebug supervisor (pid {pid}) is listening on {host}:{port}; "
        "starting {count} workers",
        pid=os.getpid(),
        host=host,
        port=port,
        count=count,
    )
    reactor.callWhenRunning(forwarder.install)
    reactor.callWhenRunning(supervisor.start)
    return finished
