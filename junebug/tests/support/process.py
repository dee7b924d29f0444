"""Run ``jb`` as a real subprocess for end-to-end tests, off the reactor thread."""

from __future__ import annotations

import os
import signal
import socket
import sys
from typing import Any

from twisted.internet import task
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import ProcessProtocol, Protocol
from twisted.python.failure import Failure

from junebug.reactors import ProcessReactor, TimeTCPReactor


def free_port() -> int:
    """A TCP port that was free a moment ago on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def accepts_tcp(reactor: TimeTCPReactor, host: str, port: int) -> bool:
    """True if something accepts TCP connections on ``host:port`` (the
    connection is closed again at once)."""
    endpoint = TCP4ClientEndpoint(reactor, host, port, timeout=1)
    try:
        proto = await connectProtocol(endpoint, Protocol())
    except Exception:
        return False
    if proto.transport is not None:
        proto.transport.loseConnection()
    return True


class ProcessOutput(ProcessProtocol):
    """Collects a child's stdout and stderr together; ``ended`` fires with its
    exit code (minus the signal number if a signal ended it)."""

    def __init__(self) -> None:
        self.output = bytearray()
        self.ended: Deferred[int] = Deferred()

    def outReceived(self, data: bytes) -> None:
        self.output.extend(data)

    def errReceived(self, data: bytes) -> None:
        self.output.extend(data)

    def processEnded(self, reason: Failure) -> None:
        code = getattr(reason.value, "exitCode", None)
        signal_number = getattr(reason.value, "signal", None)
        self.ended.callback(code if code is not None else -(signal_number or 0))


class JbProcess:
    """``python -m junebug <args>`` with its output captured."""

    def __init__(self, reactor: ProcessReactor, args: list[str], port: int) -> None:
        self.reactor = reactor
        self.args = args
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self._proto: ProcessOutput | None = None
        self._transport: Any = None

    @property
    def output(self) -> str:
        return (
            bytes(self._proto.output).decode("utf-8", "replace") if self._proto else ""
        )

    async def start(
        self, timeout: float = 30.0, until: str = "Junebug is ready"
    ) -> None:
        """Spawn jb and wait until its output shows ``until`` (by default:
        it is ready, serving every route, not only listening)."""
        self._proto = ProcessOutput()
        env = dict(os.environ)
        env.setdefault("PYTHONUNBUFFERED", "1")
        argv = [
            sys.executable,
            "-m",
            "junebug",
            "--interface",
            "127.0.0.1",
            "--port",
            str(self.port),
            *self.args,
        ]
        self._transport = self.reactor.spawnProcess(
            self._proto, sys.executable, argv, env=env
        )
        waited = 0.0
        while waited < timeout:
            if self._proto.ended.called:
                raise RuntimeError(f"jb exited early:\n{self.output}")
            if until in self.output:
                return
            await task.deferLater(self.reactor, 0.05, lambda: None)
            waited += 0.05
        raise TimeoutError(f"jb did not start within {timeout}s:\n{self.output}")

    def send_signal(self, sig: int) -> None:
        """Signal the process without waiting for it."""
        assert self._proto is not None, "start() first"
        if not self._proto.ended.called:
            self._transport.signalProcess(sig)

    @property
    def pid(self) -> int | None:
        """The child's process id once started."""
        return None if self._transport is None else int(self._transport.pid)

    @property
    def ended(self) -> bool:
        return self._proto is not None and self._proto.ended.called

    async def exited(self, timeout: float = 30.0) -> int:
        """Wait (without signalling) for the process to end; its exit code."""
        assert self._proto is not None, "start() first"
        ended: Deferred[int] = Deferred()
        self._proto.ended.addBoth(lambda code: (ended.callback(code), code)[1])
        return await ended.addTimeout(timeout, self.reactor)

    async def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Signal the process and wait for it to end; returns its exit code."""
        if self._proto is None or self._proto.ended.called:
            return 0
        self._transport.signalProcess(sig)
        ended = self._proto.ended
        try:
            return await ended.addTimeout(timeout, self.reactor)
        except Exception:
            self._transport.signalProcess(signal.SIGKILL)
            raise

    async def kill(self) -> int:
        return await self.stop(signal.SIGKILL)
