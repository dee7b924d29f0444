"""A private, persistent redis-server for fault-injection tests.

The machine's shared Redis keeps nothing on disk, so a test that restarts
Redis runs its own: append-only file, ``appendfsync always``, on a free port
in a temp dir.  :meth:`RedisServer.restart` kills it (SIGKILL: the worst case)
and starts it again on the same port and data.
"""

from __future__ import annotations

import os
import signal
import tempfile
from typing import Any

from twisted.internet import task
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionRefusedError as Refused
from twisted.internet.protocol import ProcessProtocol
from twisted.python.failure import Failure

from junebug.testing.process import free_port


class _Ended(ProcessProtocol):
    def __init__(self) -> None:
        self.ended: Deferred[None] = Deferred()

    def processEnded(self, reason: Failure) -> None:
        self.ended.callback(None)


class RedisServer:
    """``redis-server`` as a child process with durable data."""

    def __init__(self, reactor: Any) -> None:
        self.reactor = reactor
        self.port = free_port()
        self.directory = tempfile.mkdtemp(prefix="jb-redis-")
        self._transport: Any = None
        self._proto: _Ended | None = None

    async def start(self, timeout: float = 20.0) -> None:
        self._proto = _Ended()
        argv = [
            "redis-server",
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            self.directory,
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--save",
            "",
            "--logfile",
            os.path.join(self.directory, "redis.log"),
        ]
        self._transport = self.reactor.spawnProcess(
            self._proto, "redis-server", argv, env=dict(os.environ), path=self.directory
        )
        await self._wait_listening(timeout)

    async def _wait_listening(self, timeout: float) -> None:
        from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
        from twisted.internet.protocol import Protocol

        waited = 0.0
        while waited < timeout:
            try:
                endpoint = TCP4ClientEndpoint(self.reactor, "127.0.0.1", self.port)
                proto = await connectProtocol(endpoint, Protocol())
            except Refused:
                await task.deferLater(self.reactor, 0.05, lambda: None)
                waited += 0.05
                continue
            assert proto.transport is not None
            proto.transport.loseConnection()
            return
        raise TimeoutError(f"redis-server on {self.port} did not start")

    async def stop(self, sig: int = signal.SIGTERM) -> None:
        if self._proto is None or self._proto.ended.called:
            return
        self._transport.signalProcess(sig)
        await self._proto.ended

    async def restart(self) -> None:
        """Kill -9 and start again on the same port and data."""
        await self.stop(signal.SIGKILL)
        await self.start()
