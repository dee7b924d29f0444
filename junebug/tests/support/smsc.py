"""Run the test SMSCs of ``junebug/tests/support/peers`` as subprocesses.

Two independent SMPP 3.4 servers, scripted as SMSCs:

- ``node``: ``peers/node_smpp_smsc.js`` on the npm package ``smpp@0.5.1``.
  :func:`node_smpp_modules` installs that package on first use (``npm
  install``, non-interactive, under a file lock so that parallel test runs
  install it once) into ``$JUNEBUG_NODE_SMPP_DIR``, by default
  ``~/.cache/junebug/node-smpp-0.5.1``; Node.js and npm must be on ``PATH``.
- ``smpp34``: ``peers/smpp34_smsc.py`` on the PyPI package ``smpp34`` (a dev
  dependency), run with the current Python.

Modes (``MODE``): ``dlr`` (acks, a delivery receipt for each message asking
for one, and one MO after each bind that can receive), ``ack-only``,
``throttle-every-3`` and (node only) ``qfull-every-3``.  Both print one line
per event; each ``submit_sm`` is a ``SUBMIT {json}`` line, which
:attr:`SmscPeer.submits` parses (the node peer's carry ``t``, when it came
in: seconds on a monotonic clock).

Usage from a ``twisted.trial.unittest.TestCase``::

    peer = SmscPeer(reactor, "node", mode="dlr")
    await peer.start()
    self.addCleanup(peer.stop)
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, Final, Literal

from twisted.internet import task
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.error import ProcessDone, ProcessTerminated
from twisted.internet.protocol import Factory, ProcessProtocol, Protocol
from twisted.python.failure import Failure
from typing_extensions import override

from junebug.reactors import ProcessReactor
from junebug.tests.support.process import free_port

__all__ = [
    "NODE_SMPP_VERSION",
    "PEERS_DIR",
    "PeerKind",
    "SmscPeer",
    "node_smpp_modules",
]

NODE_SMPP_VERSION: Final = "0.5.1"
PEERS_DIR: Final = Path(__file__).parent / "peers"
PeerKind = Literal["node", "smpp34"]
INSTALL_TIMEOUT: Final = 300.0


def _node_cache_dir() -> Path:
    configured = os.environ.get("JUNEBUG_NODE_SMPP_DIR")
    if configured:
        return Path(configured)
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "junebug" / f"node-smpp-{NODE_SMPP_VERSION}"


def _installed_version(modules: Path) -> str | None:
    try:
        manifest = json.loads((modules / "smpp" / "package.json").read_text())
    except (OSError, ValueError):
        return None
    version = manifest.get("version")
    return version if isinstance(version, str) else None


def node_smpp_modules() -> Path:
    """The ``node_modules`` holding ``smpp@0.5.1``, installed if missing.

    This blocks while npm runs (once per machine); call it before starting a
    peer, e.g. in ``setUp``.
    """
    root = _node_cache_dir()
    modules = root / "node_modules"
    if _installed_version(modules) == NODE_SMPP_VERSION:
        return modules
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is needed to install the node-smpp test SMSC")
    root.mkdir(parents=True, exist_ok=True)
    with (root / ".install.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _installed_version(modules) != NODE_SMPP_VERSION:
            env = dict(os.environ)
            env.update(npm_config_yes="true", npm_config_update_notifier="false")
            result = subprocess.run(
                [
                    npm,
                    "install",
                    "--prefix",
                    str(root),
                    "--no-audit",
                    "--no-fund",
                    "--no-package-lock",
                    "--save-exact",
                    f"smpp@{NODE_SMPP_VERSION}",
                ],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                env=env,
                timeout=INSTALL_TIMEOUT,
                check=False,
            )
            if result.returncode != 0 or (
                _installed_version(modules) != NODE_SMPP_VERSION
            ):
                raise RuntimeError(
                    f"npm install smpp@{NODE_SMPP_VERSION} failed "
                    f"({result.returncode}):\n{result.stdout}\n{result.stderr}"
                )
    return modules


class _PeerProcess(ProcessProtocol):
    def __init__(self) -> None:
        self.lines: list[str] = []
        self._partial = b""
        self.ended: Deferred[int] = Deferred()

    @override
    def outReceived(self, data: bytes) -> None:
        self._partial += data
        *complete, self._partial = self._partial.split(b"\n")
        self.lines.extend(line.decode("utf-8", "replace") for line in complete)

    @override
    def errReceived(self, data: bytes) -> None:
        self.lines.extend(
            "stderr: " + line for line in data.decode("utf-8", "replace").splitlines()
        )

    @override
    def processEnded(self, reason: Failure) -> None:
        value = reason.value
        code = 0
        if isinstance(value, ProcessTerminated):
            exit_code = value.exitCode
            code = exit_code if exit_code is not None else -(value.signal or 0)
        elif not isinstance(value, ProcessDone):
            code = -1
        self.ended.callback(code)


class SmscPeer:
    """One test SMSC subprocess; see the module docs."""

    def __init__(
        self,
        reactor: ProcessReactor,
        kind: PeerKind,
        mode: str = "dlr",
        port: int | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.reactor = reactor
        self.kind = kind
        self.mode = mode
        self.port = port if port is not None else free_port()
        self.extra_env = dict(env or {})
        self._process: _PeerProcess | None = None
        self._transport: Any = None

    @property
    def endpoint(self) -> str:
        """A client endpoint description of the peer."""
        return f"tcp:host=127.0.0.1:port={self.port}"

    @property
    def lines(self) -> list[str]:
        """Everything the peer printed, one entry per line."""
        return list(self._process.lines) if self._process else []

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    @property
    def submits(self) -> list[dict[str, Any]]:
        """Each ``submit_sm`` the peer received, as it described it."""
        prefix = "SUBMIT "
        return [
            json.loads(line[len(prefix) :])
            for line in self.lines
            if line.startswith(prefix)
        ]

    @property
    def running(self) -> bool:
        return self._process is not None and not self._process.ended.called

    def _command(self) -> tuple[str, list[str], dict[str, str]]:
        env = dict(os.environ)
        env.update(self.extra_env)
        env["PORT"] = str(self.port)
        env["MODE"] = self.mode
        env.setdefault("PYTHONUNBUFFERED", "1")
        if self.kind == "node":
            node = shutil.which("node")
            if node is None:
                raise RuntimeError("Node.js is needed for the node-smpp test SMSC")
            env["NODE_PATH"] = str(node_smpp_modules())
            return node, [node, str(PEERS_DIR / "node_smpp_smsc.js")], env
        return (
            sys.executable,
            [sys.executable, str(PEERS_DIR / "smpp34_smsc.py")],
            env,
        )

    async def start(self, timeout: float = 30.0) -> None:
        """Spawn the peer and return once it accepts TCP connections."""
        if self.kind == "smpp34":
            try:
                import smpp34  # noqa: F401
            except ImportError:
                raise RuntimeError(
                    "the PyPI package smpp34 is needed for the smpp34 test SMSC"
                ) from None
        executable, argv, env = self._command()
        self._process = _PeerProcess()
        self._transport = self.reactor.spawnProcess(
            self._process, executable, argv, env=env, path=str(PEERS_DIR)
        )
        waited = 0.0
        interval = 0.05
        while waited < timeout:
            if self._process.ended.called:
                raise RuntimeError(f"the {self.kind} SMSC exited early:\n{self.output}")
            listening = any("listening" in line for line in self._process.lines)
            if listening and await self._accepts_connections():
                return
            await task.deferLater(self.reactor, interval, lambda: None)
            waited += interval
        await self.stop()
        raise TimeoutError(
            f"the {self.kind} SMSC did not listen within {timeout:g}s:\n{self.output}"
        )

    async def _accepts_connections(self) -> bool:
        endpoint = TCP4ClientEndpoint(self.reactor, "127.0.0.1", self.port, timeout=2)
        try:
            protocol = await endpoint.connect(Factory.forProtocol(Protocol))
        except Exception:
            return False
        transport = getattr(protocol, "transport", None)
        if transport is not None:
            transport.loseConnection()
        return True

    async def wait_for_line(self, text: str, timeout: float = 10.0) -> str:
        """The first line containing ``text``, waiting for it if needed."""
        waited = 0.0
        while True:
            for line in self.lines:
                if text in line:
                    return line
            if waited >= timeout:
                raise TimeoutError(
                    f"the {self.kind} SMSC printed no {text!r} within "
                    f"{timeout:g}s:\n{self.output}"
                )
            await task.deferLater(self.reactor, 0.02, lambda: None)
            waited += 0.02

    async def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
        """End the peer (by its own pid) and wait for it to exit."""
        process = self._process
        if process is None or process.ended.called:
            return
        try:
            self._transport.signalProcess(sig)
        except Exception:
            return
        if not await self._wait_ended(timeout):
            self._transport.signalProcess(signal.SIGKILL)
            await self._wait_ended(timeout)

    async def _wait_ended(self, timeout: float) -> bool:
        process = self._process
        waited = 0.0
        while process is not None and not process.ended.called:
            if waited >= timeout:
                return False
            await task.deferLater(self.reactor, 0.02, lambda: None)
            waited += 0.02
        return True

    async def kill(self) -> None:
        """End the peer abruptly (SIGKILL), as a crash would."""
        await self.stop(signal.SIGKILL)
