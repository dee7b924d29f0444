"""A private RabbitMQ node for tests that restart or alarm a broker.

The machine's shared RabbitMQ serves every test run at once; a test that
stops it, or sets off its memory alarm, breaks the others.  Such a test
starts a :class:`PrivateRabbitMQ` instead: a node of its own (its own node
name, AMQP port and distribution port, its database, logs and Erlang cookie
in a temporary directory, no plugins, so no management listener), optionally
with a TLS listener on a self-signed certificate.  :meth:`PrivateRabbitMQ.stop`
halts it and removes the directory.

It needs the ``rabbitmq-server`` scripts (``/usr/lib/rabbitmq/bin`` or on the
``PATH``); :func:`rabbitmq_scripts` is ``None`` without them, and tests skip.
Starting takes a few seconds; nothing here blocks the reactor: processes are
spawned and ports polled.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any
from uuid import uuid4

from twisted.internet import task
from twisted.internet.defer import Deferred
from twisted.internet.error import ProcessDone
from twisted.internet.protocol import ProcessProtocol
from twisted.internet.utils import getProcessOutputAndValue
from twisted.python.failure import Failure

from junebug.amqp.settings import AmqpSettings, TlsSettings
from junebug.testing.certificates import write_self_signed
from junebug.tests.support.process import accepts_tcp, free_port

__all__ = ["PrivateRabbitMQ", "rabbitmq_scripts", "self_signed_certificate"]

_SCRIPT_DIRS = ("/usr/lib/rabbitmq/bin",)


def rabbitmq_scripts() -> Path | None:
    """The directory of ``rabbitmq-server`` and ``rabbitmqctl``, if installed."""
    for directory in _SCRIPT_DIRS:
        if (Path(directory) / "rabbitmq-server").exists():
            return Path(directory)
    found = shutil.which("rabbitmq-server")
    if found is None:
        return None
    # /usr/sbin/rabbitmq-server is often a wrapper that switches user and
    # drops the environment; the real scripts sit beside its target.
    return Path(os.path.realpath(found)).parent


def self_signed_certificate(directory: Path, host: str = "localhost") -> Path:
    """Write ``cert.pem`` and ``key.pem`` for ``host`` into ``directory``
    (the certificate is its own authority); returns ``cert.pem``."""
    cert_path, _ = write_self_signed(
        directory, host, days=7, cert_name="cert.pem", key_name="key.pem"
    )
    return cert_path


class _ServerProcess(ProcessProtocol):
    def __init__(self) -> None:
        self.output = bytearray()
        self.ended: Deferred[None] = Deferred()

    def outReceived(self, data: bytes) -> None:
        self.output += data

    errReceived = outReceived

    def processEnded(self, reason: Failure) -> None:
        if not reason.check(ProcessDone):
            self.output += f"\n[exited: {reason.getErrorMessage()}]".encode()
        self.ended.callback(None)


class PrivateRabbitMQ:
    """One RabbitMQ node owned by a test (see the module docs)."""

    def __init__(self, reactor: Any, *, tls: bool = False) -> None:
        scripts = rabbitmq_scripts()
        if scripts is None:
            raise RuntimeError("RabbitMQ is not installed")
        self.reactor = reactor
        self._scripts = scripts
        self.node = f"jbtest-{uuid4().hex[:12]}@localhost"
        self.port = free_port()
        self.dist_port = free_port()
        self.tls_port = free_port() if tls else None
        self.directory = Path(tempfile.mkdtemp(prefix="jb-rabbitmq-"))
        self.certificate: Path | None = None
        self._process: _ServerProcess | None = None

    def settings(self, **overrides: Any) -> AmqpSettings:
        """Settings reaching this node's plain AMQP port."""
        return AmqpSettings(port=self.port, **overrides)

    def tls_settings(self, **overrides: Any) -> AmqpSettings:
        """Settings reaching the TLS port, trusting the node's certificate."""
        if self.tls_port is None or self.certificate is None:
            raise RuntimeError("this node has no TLS listener")
        fields: dict[str, Any] = {
            "host": "localhost",
            "port": self.tls_port,
            "tls": TlsSettings(ca_file=str(self.certificate)),
        }
        fields.update(overrides)
        return AmqpSettings(**fields)

    @property
    def output(self) -> str:
        """What the server printed so far (for failure messages)."""
        if self._process is None:
            return ""
        return self._process.output.decode(errors="replace")

    def _environment(self) -> dict[str, str]:
        d = self.directory
        return {
            **os.environ,
            # The Erlang cookie is created in (and read from) $HOME.
            "HOME": str(d),
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(d / "mnesia"),
            "RABBITMQ_LOG_BASE": str(d / "log"),
            "RABBITMQ_PID_FILE": str(d / "rabbitmq.pid"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(d / "enabled_plugins"),
            "RABBITMQ_CONFIG_FILE": str(d / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(d / "advanced.config"),
            "RABBITMQ_CONF_ENV_FILE": str(d / "rabbitmq-env.conf"),
        }

    def _write_config(self) -> None:
        d = self.directory
        (d / "enabled_plugins").write_text("[].\n")
        lines = [f"listeners.tcp.default = 127.0.0.1:{self.port}"]
        if self.tls_port is not None:
            self.certificate = self_signed_certificate(d)
            lines += [
                f"listeners.ssl.default = 127.0.0.1:{self.tls_port}",
                f"ssl_options.cacertfile = {self.certificate}",
                f"ssl_options.certfile = {self.certificate}",
                f"ssl_options.keyfile = {d / 'key.pem'}",
                "ssl_options.verify = verify_none",
                "ssl_options.fail_if_no_peer_cert = false",
            ]
        (d / "rabbitmq.conf").write_text("\n".join(lines) + "\n")

    async def start(self, timeout: float = 90.0) -> None:
        """Start the node and return once it accepts AMQP connections.

        Readiness is polled by connecting to the AMQP port(s) (RabbitMQ opens
        its listeners last in its boot), not with ``rabbitmqctl``, whose every
        run boots an Erlang VM: about half a CPU second each.
        """
        self._write_config()
        process = self._process = _ServerProcess()
        server = str(self._scripts / "rabbitmq-server")
        self.reactor.spawnProcess(
            process, server, [server], env=self._environment(), path=str(self.directory)
        )
        ports = [self.port] if self.tls_port is None else [self.port, self.tls_port]
        deadline = self.reactor.seconds() + timeout
        while True:
            if process.ended.called:
                raise RuntimeError(f"RabbitMQ node did not start:\n{self.output}")
            if all([await accepts_tcp(self.reactor, "127.0.0.1", p) for p in ports]):
                return
            if self.reactor.seconds() > deadline:
                await self.stop()
                raise RuntimeError(f"RabbitMQ node not up in {timeout:g}s")
            await task.deferLater(self.reactor, 0.1, lambda: None)

    async def _ctl_status(self, *args: str) -> tuple[int, str]:
        ctl = str(self._scripts / "rabbitmqctl")
        _out, err, code = await getProcessOutputAndValue(
            ctl,
            ["-q", "-n", self.node, *args],
            env=self._environment(),
            reactor=self.reactor,
        )
        return code, err.decode(errors="replace")

    async def rabbitmqctl(self, *args: str) -> None:
        """Run ``rabbitmqctl -n <node> args``; :class:`RuntimeError` on failure."""
        code, err = await self._ctl_status(*args)
        if code != 0:
            raise RuntimeError(f"rabbitmqctl {' '.join(args)}: {err}")

    async def restart_app(self) -> None:
        """Stop and start the RabbitMQ application (durable state persists)."""
        await self.rabbitmqctl("stop_app")
        await self.rabbitmqctl("start_app")
        await self.rabbitmqctl("await_startup")

    async def memory_alarm(self, on: bool) -> None:
        """Set off (or clear) the memory alarm: publishers get blocked."""
        await self.rabbitmqctl("set_vm_memory_high_watermark", "0" if on else "0.4")

    async def stop(self) -> None:
        """Halt the node, wait for it to exit and remove its directory.

        SIGTERM makes the ``rabbitmq-server`` script stop the node properly
        (as ``rabbitmqctl stop`` would, without booting another VM); SIGKILL
        after 30 seconds."""
        process = self._process
        if process is not None and not process.ended.called:
            if process.transport is not None:
                process.transport.signalProcess("TERM")
            timer = self.reactor.callLater(30, self._kill)
            await process.ended
            if timer.active():
                timer.cancel()
        shutil.rmtree(self.directory, ignore_errors=True)

    def _kill(self) -> None:
        process = self._process
        if process is not None and process.transport is not None:
            process.transport.signalProcess("KILL")
