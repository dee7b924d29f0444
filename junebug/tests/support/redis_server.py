"""A private redis-server: persistent for fault-injection tests, or listening
where the shared one does not (TLS, a unix socket, IPv6).

The machine's shared Redis keeps nothing on disk, so a test that restarts
Redis runs its own: append-only file, ``appendfsync always``, on a free port
in a temp dir.  :meth:`RedisServer.restart` kills it (SIGKILL: the worst case)
and starts it again on the same port and data.  ``tls`` (certificate files)
serves TLS only on :attr:`RedisServer.port`; ``unix_socket`` serves only on
:attr:`RedisServer.socket_path`; ``bind`` may be ``::1``.
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

from junebug.reactors import ProcessReactor
from junebug.testing.certificates import CertificateFiles
from junebug.tests.support.process import free_port


class _Ended(ProcessProtocol):
    def __init__(self) -> None:
        self.ended: Deferred[None] = Deferred()

    def processEnded(self, reason: Failure) -> None:
        self.ended.callback(None)


class RedisServer:
    """``redis-server`` as a child process with durable data."""

    def __init__(
        self,
        reactor: ProcessReactor,
        *,
        bind: str = "127.0.0.1",
        tls: CertificateFiles | None = None,
        unix_socket: bool = False,
    ) -> None:
        self.reactor = reactor
        self.bind = bind
        self.tls = tls
        self.port = free_port()
        self.directory = tempfile.mkdtemp(prefix="jb-redis-")
        self.socket_path = (
            os.path.join(self.directory, "redis.sock") if unix_socket else None
        )
        self._transport: Any = None
        self._proto: _Ended | None = None

    async def start(self, timeout: float = 20.0) -> None:
        self._proto = _Ended()
        argv = ["redis-server", *self._listening(), "--bind", self.bind]
        argv += [
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

    def _listening(self) -> list[str]:
        if self.socket_path is not None:
            return ["--port", "0", "--unixsocket", self.socket_path]
        if self.tls is not None:
            return [
                "--port",
                "0",
                "--tls-port",
                str(self.port),
                "--tls-cert-file",
                self.tls.cert_file,
                "--tls-key-file",
                self.tls.key_file,
                "--tls-ca-cert-file",
                self.tls.ca_file,
                "--tls-auth-clients",
                "no",
            ]
        return ["--port", str(self.port)]

    async def _wait_listening(self, timeout: float) -> None:
        from twisted.internet.endpoints import (
            TCP4ClientEndpoint,
            TCP6ClientEndpoint,
            UNIXClientEndpoint,
            connectProtocol,
        )
        from twisted.internet.error import ConnectError
        from twisted.internet.protocol import Protocol

        endpoint: Any
        if self.socket_path is not None:
            endpoint = UNIXClientEndpoint(self.reactor, self.socket_path)
        elif ":" in self.bind:
            endpoint = TCP6ClientEndpoint(self.reactor, self.bind, self.port)
        else:
            endpoint = TCP4ClientEndpoint(self.reactor, self.bind, self.port)
        waited = 0.0
        while waited < timeout:
            if self._proto is not None and self._proto.ended.called:
                log = os.path.join(self.directory, "redis.log")
                with open(log, encoding="utf-8", errors="replace") as handle:
                    raise RuntimeError(f"redis-server ended: {handle.read()[-2000:]}")
            try:
                proto = await connectProtocol(endpoint, Protocol())
            except (Refused, ConnectError):
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
