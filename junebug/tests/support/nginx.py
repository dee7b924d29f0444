"""A private nginx for tests.

:func:`start_nginx` makes sure Debian's ``nginx`` package is installed
(installing it with ``apt-get`` when it is missing and we are root, with
``policy-rc.d`` keeping the packaged service from starting), then runs nginx
as a child process with its own prefix, config, pid file and logs in a
temporary directory, in the foreground (``daemon off``).  Its ``nginx.conf``
includes ``<dir>/sites/*.conf`` (where the plugin's vhost goes) and serves a
readiness check on a second free port, so the server is known to be up before
any vhost exists.  :attr:`NginxServer.reload_command` reloads exactly this
nginx.  At cleanup nginx is stopped and the directory removed.  If nginx cannot
be installed or started, the test fails with the reason; it is never skipped.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
from pathlib import Path
from typing import Any

from twisted.internet import task
from twisted.internet.defer import Deferred, DeferredLock
from twisted.internet.protocol import ProcessProtocol
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from junebug.reactors import ProcessReactor
from junebug.tests.support.apt import apt_install, run_command
from junebug.tests.support.process import accepts_tcp, free_port

__all__ = ["NginxError", "NginxServer", "ensure_nginx", "start_nginx"]

PACKAGE = "nginx"

_install_lock = DeferredLock()


class NginxError(RuntimeError):
    """nginx could not be installed, configured or started."""


def nginx_binary() -> str | None:
    """The nginx executable, if installed (``/usr/sbin`` may not be on PATH)."""
    found = shutil.which("nginx")
    if found:
        return found
    for candidate in ("/usr/sbin/nginx", "/usr/local/sbin/nginx"):
        if os.access(candidate, os.X_OK):
            return candidate
    return None


async def _apt_install(reactor: ProcessReactor) -> None:
    await apt_install(reactor, PACKAGE, NginxError, ["--no-install-recommends"])


async def _ensure(reactor: ProcessReactor) -> str:
    binary = nginx_binary()
    if binary is not None:
        return binary
    if os.geteuid() != 0:
        raise NginxError(
            "nginx is not installed and the tests are not running as root; "
            "install it with: apt-get install -y nginx"
        )
    await _apt_install(reactor)
    binary = nginx_binary()
    if binary is None:
        raise NginxError(f"apt-get installed {PACKAGE} but there is no nginx binary")
    return binary


async def ensure_nginx(reactor: ProcessReactor) -> str:
    """The nginx binary, installed first if needed (one install at a time)."""
    async with _install_lock:
        return await _ensure(reactor)


class _Output(ProcessProtocol):
    """Collects nginx's output; ``exited`` fires when the master exits (its
    workers may still hold the pipes for a moment)."""

    def __init__(self) -> None:
        self.output = bytearray()
        self.exited: Deferred[int] = Deferred()
        self.ended: Deferred[None] = Deferred()

    def outReceived(self, data: bytes) -> None:
        self.output.extend(data)

    def errReceived(self, data: bytes) -> None:
        self.output.extend(data)

    def processExited(self, reason: Failure) -> None:
        code = getattr(reason.value, "exitCode", None)
        self.exited.callback(code if code is not None else -1)

    def processEnded(self, reason: Failure) -> None:
        self.ended.callback(None)


def _children(pid: int) -> list[int]:
    """The child processes of ``pid`` (nginx's workers), from /proc."""
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task_dir in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                found.extend(
                    int(c) for c in (task_dir / "children").read_text().split()
                )
    return found


CONF_TEMPLATE = """\
daemon off;
master_process on;
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/error.log info;
{user}
events {{
  worker_connections 64;
}}
http {{
  access_log {root}/access.log;
  client_body_temp_path {root}/tmp/client_body;
  proxy_temp_path {root}/tmp/proxy;
  fastcgi_temp_path {root}/tmp/fastcgi;
  uwsgi_temp_path {root}/tmp/uwsgi;
  scgi_temp_path {root}/tmp/scgi;
  server {{
    listen 127.0.0.1:{ready_port};
    location / {{
      return 204;
    }}
  }}
  include {root}/sites/*.conf;
}}
"""


class NginxServer:
    """One private nginx (see the module doc)."""

    def __init__(self, reactor: ProcessReactor, binary: str, root: Path) -> None:
        self.reactor = reactor
        self.binary = binary
        self.root = root
        self.port = free_port()
        self.ready_port = free_port()
        self._proto: _Output | None = None
        self._transport: Any = None

    @property
    def conf(self) -> Path:
        return self.root / "nginx.conf"

    @property
    def sites_dir(self) -> Path:
        return self.root / "sites"

    @property
    def locations_dir(self) -> Path:
        return self.root / "locations"

    @property
    def base_args(self) -> list[str]:
        return [
            self.binary,
            "-p",
            f"{self.root}/",
            "-c",
            str(self.conf),
            "-e",
            str(self.root / "error.log"),
        ]

    @property
    def reload_command(self) -> list[str]:
        return [*self.base_args, "-s", "reload"]

    @property
    def output(self) -> str:
        text = (
            bytes(self._proto.output).decode("utf-8", "replace") if self._proto else ""
        )
        log = self.root / "error.log"
        if log.exists():
            text += log.read_text(errors="replace")
        return text

    def write_config(self) -> None:
        for sub in ("sites", "locations", "tmp", "logs"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        user = "user root;" if os.geteuid() == 0 else ""
        self.conf.write_text(
            CONF_TEMPLATE.format(root=self.root, ready_port=self.ready_port, user=user)
        )

    async def start(self, timeout: float = 20.0) -> None:
        self.write_config()
        code, output = await run_command(
            self.reactor, self.binary, [*self.base_args[1:], "-t"]
        )
        if code != 0:
            raise NginxError(f"nginx rejects its test config:\n{output}")
        self._proto = _Output()
        self._transport = self.reactor.spawnProcess(
            self._proto, self.binary, self.base_args, env=dict(os.environ)
        )
        waited = 0.0
        while waited < timeout:
            if self._proto.exited.called:
                raise NginxError(f"nginx exited early:\n{self.output}")
            if await self.accepts(self.ready_port):
                return
            await task.deferLater(self.reactor, 0.05, lambda: None)
            waited += 0.05
        raise NginxError(f"nginx did not start in {timeout}s:\n{self.output}")

    async def accepts(self, port: int) -> bool:
        """True if something accepts TCP connections on 127.0.0.1:port."""
        return await accepts_tcp(self.reactor, "127.0.0.1", port)

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop gracefully (SIGQUIT); after ``timeout`` kill the master and its
        workers, by pid."""
        proto, transport = self._proto, self._transport
        if proto is None or transport is None or proto.exited.called:
            return
        pid = transport.pid
        with contextlib.suppress(Exception):
            os.kill(pid, signal.SIGQUIT)

        def kill() -> None:
            for child in _children(pid):
                with contextlib.suppress(OSError):
                    os.kill(child, signal.SIGKILL)
            with contextlib.suppress(Exception):
                transport.signalProcess("KILL")

        timer = self.reactor.callLater(timeout, kill)
        try:
            await proto.exited
        finally:
            if timer.active():
                timer.cancel()
        # The pipes close once the last worker is gone; never wait forever.
        closing = self.reactor.callLater(timeout, transport.loseConnection)
        try:
            await proto.ended
        finally:
            if closing.active():
                closing.cancel()


async def start_nginx(
    case: SynchronousTestCase, reactor: ProcessReactor
) -> NginxServer:
    """A running private nginx, stopped and removed at the case's cleanup."""
    binary = await ensure_nginx(reactor)
    root = Path(tempfile.mkdtemp(prefix="jb-nginx-"))
    case.addCleanup(shutil.rmtree, root, True)
    server = NginxServer(reactor, binary, root)
    case.addCleanup(server.stop)
    await server.start()
    return server
