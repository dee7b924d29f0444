"""A private Prosody XMPP server for tests, and a plain XMPP client to talk to it.

:func:`start_prosody` makes sure Debian's ``prosody`` package is installed
(installing it with ``apt-get`` when it is missing and we are root, with
``policy-rc.d`` keeping the packaged service from starting), then runs a
private server as a child process: its own config, data and pid file in a
temporary directory, listening for clients on a free port of 127.0.0.1 for the
virtual host ``localhost``, in the foreground, logging to the console.  Accounts
are created with ``prosodyctl register``.  At cleanup the server is stopped and
the directory removed.  If Prosody cannot be installed or started, the test
fails with the reason; it is never skipped.

With ``tls=True`` the server has a self-signed certificate for ``localhost``
(written next to the config; :attr:`ProsodyServer.ca_certificate`) and requires
STARTTLS; otherwise it offers no TLS and allows PLAIN logins in the clear.

:class:`XmppPeer` is a client built from Twisted's own XMPP stack (PLAIN login,
no TLS), used as the person the channel chats with.
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
from twisted.internet.defer import Deferred, DeferredQueue
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.words.protocols.jabber import client, jid, xmlstream
from twisted.words.xish import domish

from junebug.reactors import ProcessReactor, TimeTCPReactor
from junebug.tests.support.apt import apt_install, run_command
from junebug.tests.support.process import ProcessOutput, accepts_tcp, free_port

__all__ = [
    "DOMAIN",
    "ProsodyError",
    "ProsodyServer",
    "XmppPeer",
    "ensure_prosody",
    "free_port",
    "start_prosody",
]

DOMAIN = "localhost"
APT_TIMEOUT_SECONDS = 600

_install: Deferred[tuple[str, str] | Exception] | None = None


class ProsodyError(RuntimeError):
    """Prosody could not be installed, configured or started."""


def _binaries() -> tuple[str, str] | None:
    server, ctl = shutil.which("prosody"), shutil.which("prosodyctl")
    if server and ctl:
        return server, ctl
    return None


async def _apt_install(reactor: ProcessReactor) -> None:
    await apt_install(reactor, "prosody", ProsodyError)
    # If a service manager started the packaged server anyway, stop it.
    if Path("/run/prosody/prosody.pid").exists():
        ctl = shutil.which("prosodyctl")
        if ctl:
            await run_command(reactor, ctl, ["stop"])


async def _ensure(reactor: ProcessReactor) -> tuple[str, str]:
    found = _binaries()
    if found:
        return found
    if os.geteuid() != 0:
        raise ProsodyError(
            "prosody is not installed and the tests are not running as root, so "
            "they cannot install it: run `apt-get install prosody` first"
        )
    await _apt_install(reactor)
    found = _binaries()
    if not found:
        raise ProsodyError("apt-get installed prosody, but prosody is not on PATH")
    return found


async def _ensure_outcome(reactor: ProcessReactor) -> tuple[str, str] | Exception:
    try:
        return await _ensure(reactor)
    except Exception as exc:
        return exc


async def ensure_prosody(reactor: ProcessReactor) -> tuple[str, str]:
    """Paths of ``prosody`` and ``prosodyctl``, installing them once if needed.

    Concurrent callers share one installation; after a failed one, the next
    caller tries again.
    """
    global _install
    found = _binaries()
    if found:
        return found
    if _install is None:
        _install = Deferred.fromCoroutine(_ensure_outcome(reactor))
    outcome = await _observe(_install)
    if isinstance(outcome, Exception):
        _install = None
        raise outcome
    result: tuple[str, str] = outcome
    return result


def _observe(d: Deferred[Any]) -> Deferred[Any]:
    """A Deferred that fires as ``d`` does, even if it is cancelled first.

    ``d`` keeps a successful result for later observers; a failure is passed
    on to this observer and consumed.
    """
    copy: Deferred[Any] = Deferred()

    def fire(result: object) -> object:
        if isinstance(result, Failure):
            if not copy.called:
                copy.errback(result)
            return None
        if not copy.called:
            copy.callback(result)
        return result

    d.addBoth(fire)
    return copy


def _lua_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_self_signed(directory: Path, host: str = DOMAIN) -> tuple[Path, Path]:
    """A self-signed certificate and key for ``host``; their paths."""
    from junebug.testing import certificates

    cert_path, key_path = certificates.write_self_signed(
        directory, host, days=30, cert_name=f"{host}.crt", key_name=f"{host}.key"
    )
    key_path.chmod(0o600)
    return cert_path, key_path


class ProsodyServer:
    """One private Prosody, configured in ``workdir``."""

    host = "127.0.0.1"
    domain = DOMAIN

    def __init__(
        self,
        reactor: ProcessReactor,
        binaries: tuple[str, str],
        workdir: Path,
        port: int,
        tls: bool = False,
    ) -> None:
        self.reactor = reactor
        self.binary, self.ctl = binaries
        self.workdir = workdir
        self.port = port
        self.tls = tls
        self.ca_certificate: str | None = None
        self.config_path = workdir / "prosody.cfg.lua"
        self._proto: ProcessOutput | None = None
        self._process: Any = None
        self._outputs: list[str] = []
        self._started_once = False
        self._write_config()

    def _write_config(self) -> None:
        data = self.workdir / "data"
        data.mkdir(exist_ok=True)
        certs = self.workdir / "certs"
        certs.mkdir(exist_ok=True)
        lines = [
            f"pidfile = {_lua_string(str(self.workdir / 'prosody.pid'))}",
            f"data_path = {_lua_string(str(data))}",
            f"certificates = {_lua_string(str(certs))}",
            "daemonize = false",
            "run_as_root = true",
            f"interfaces = {{ {_lua_string(self.host)} }}",
            f"c2s_ports = {{ {self.port} }}",
            "c2s_direct_tls_ports = {}",
            "legacy_ssl_ports = {}",
            "s2s_ports = {}",
            "component_ports = {}",
            "http_ports = {}",
            "https_ports = {}",
            'modules_enabled = { "roster", "saslauth", "disco", "ping", "posix"'
            + (', "tls" }' if self.tls else " }"),
            'modules_disabled = { "s2s", "offline" }',
            'authentication = "internal_hashed"',
            'log = { { levels = { min = "info" }, to = "console" } }',
        ]
        if self.tls:
            cert, key = certs / f"{self.domain}.crt", certs / f"{self.domain}.key"
            if not cert.exists():
                write_self_signed(certs, self.domain)
            self.ca_certificate = str(cert)
            lines += [
                f"ssl = {{ certificate = {_lua_string(str(cert))}, "
                f"key = {_lua_string(str(key))} }}",
                "c2s_require_encryption = true",
                "allow_unencrypted_plain_auth = false",
            ]
        else:
            lines += [
                "c2s_require_encryption = false",
                "allow_unencrypted_plain_auth = true",
            ]
        lines.append(f"VirtualHost {_lua_string(self.domain)}")
        self.config_path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    @property
    def output(self) -> str:
        """Everything the server printed, across restarts."""
        current = (
            bytes(self._proto.output).decode("utf-8", "replace") if self._proto else ""
        )
        return "".join(self._outputs) + current

    @property
    def running(self) -> bool:
        return self._proto is not None and not self._proto.ended.called

    def jid(self, user: str) -> str:
        return f"{user}@{self.domain}"

    async def register(self, user: str, password: str) -> None:
        """Create an account with ``prosodyctl register``."""
        code, output = await run_command(
            self.reactor,
            self.ctl,
            [
                "--config",
                str(self.config_path),
                "register",
                user,
                self.domain,
                password,
            ],
        )
        if code != 0:
            raise ProsodyError(
                f"prosodyctl register {user} failed ({code}):\n{output[-2000:]}"
            )

    async def start(self, timeout: float = 20.0, tries: int = 5) -> None:
        """Run the server and wait until it accepts connections.

        A free port can be taken by another process before Prosody binds it
        (Prosody then runs without it); the first start moves to another
        port and tries again.  A restart keeps its port, since clients were
        told it.
        """
        if self.running:
            return
        for _ in range(tries if not self._started_once else 1):
            if await self._start_once(timeout):
                self._started_once = True
                return
            if self._started_once:
                break
            self.port = free_port()
            self._write_config()
        raise ProsodyError(
            f"prosody could not listen on {self.host}:{self.port}, the port is "
            f"in use:\n{self.output[-4000:]}"
        )

    async def _start_once(self, timeout: float) -> bool:
        """One run: True once it listens, False if its port was taken."""
        if self._proto is not None:
            self._outputs.append(bytes(self._proto.output).decode("utf-8", "replace"))
        proto = self._proto = ProcessOutput()
        argv = [self.binary, "--config", str(self.config_path), "-F"]
        self._process = self.reactor.spawnProcess(
            proto, self.binary, argv, env=dict(os.environ), path=str(self.workdir)
        )
        listening = f"Activated service 'c2s' on [{self.host}]:{self.port}"
        waited = 0.0
        while waited < timeout:
            if proto.ended.called:
                raise ProsodyError(f"prosody exited at start:\n{self.output[-4000:]}")
            output = bytes(proto.output).decode("utf-8", "replace")
            if "Failed to open server port" in output:
                await self.stop()
                return False
            if listening in output and await accepts_tcp(
                self.reactor, self.host, self.port
            ):
                return True
            await task.deferLater(self.reactor, 0.05, lambda: None)
            waited += 0.05
        await self.stop()
        raise ProsodyError(
            f"prosody did not listen on {self.host}:{self.port} within "
            f"{timeout:g}s:\n{self.output[-4000:]}"
        )

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop the server (SIGTERM, then SIGKILL) and wait for it to exit."""
        if not self.running:
            return
        assert self._proto is not None
        ended = self._proto.ended
        with contextlib.suppress(Exception):
            self._process.signalProcess(signal.SIGTERM)
        try:
            await _observe(ended).addTimeout(timeout, self.reactor)
        except Exception:
            with contextlib.suppress(Exception):
                self._process.signalProcess(signal.SIGKILL)
            await _observe(ended)

    async def restart(self) -> None:
        await self.stop()
        await self.start()


async def start_prosody(
    test: SynchronousTestCase,
    reactor: ProcessReactor,
    accounts: dict[str, str] | None = None,
    tls: bool = False,
) -> ProsodyServer:
    """Install if needed, configure, register ``accounts`` and start a server.

    The server is stopped and its directory removed at the test's cleanup.
    Raises :class:`ProsodyError` (failing the test) if anything goes wrong.
    """
    binaries = await ensure_prosody(reactor)
    workdir = Path(tempfile.mkdtemp(prefix="junebug-prosody-"))
    test.addCleanup(shutil.rmtree, workdir, True)
    server = ProsodyServer(reactor, binaries, workdir, free_port(), tls=tls)
    for user, password in (accounts or {}).items():
        await server.register(user, password)
    test.addCleanup(server.stop)
    await server.start()
    return server


class XmppPeer:
    """A person's XMPP client: Twisted's own stack, PLAIN login, no TLS."""

    def __init__(self, reactor: TimeTCPReactor, address: str, password: str) -> None:
        self.reactor = reactor
        self.jid = jid.JID(address)
        self.password = password
        self.messages: DeferredQueue[domish.Element] = DeferredQueue()
        self.stream: Any = None
        self._ready: Deferred[None] = Deferred()
        self._lost: Deferred[None] = Deferred()

    async def connect(self, host: str, port: int, timeout: float = 10.0) -> None:
        factory = client.XMPPClientFactory(self.jid, self.password)
        factory.addBootstrap(xmlstream.STREAM_CONNECTED_EVENT, self._connected)
        factory.addBootstrap(xmlstream.STREAM_AUTHD_EVENT, self._authenticated)
        factory.addBootstrap(xmlstream.INIT_FAILED_EVENT, self._failed)
        factory.addBootstrap(xmlstream.STREAM_END_EVENT, self._ended)
        endpoint = TCP4ClientEndpoint(self.reactor, host, port, timeout=timeout)
        await endpoint.connect(factory)
        await _observe(self._ready).addTimeout(timeout, self.reactor)

    def _connected(self, xs: Any) -> None:
        self.stream = xs
        # Twisted insists on TLS; the plaintext test server has none.
        for initializer in xs.initializers:
            if isinstance(initializer, xmlstream.TLSInitiatingInitializer):
                initializer.required = False

    def _authenticated(self, xs: Any) -> None:
        xs.addObserver("/message", self._message)
        xs.addObserver("/presence", self._presence)
        # Ready once the server echoes our initial presence: from then on it
        # routes chats sent to our bare JID here.
        xs.send(domish.Element((None, "presence")))

    def _presence(self, element: domish.Element) -> None:
        own = self.stream.authenticator.jid.full()
        if element.getAttribute("from") == own and not self._ready.called:
            self._ready.callback(None)

    def _failed(self, reason: Failure) -> None:
        if not self._ready.called:
            self._ready.errback(reason)

    def _ended(self, reason: Failure) -> None:
        if not self._lost.called:
            self._lost.callback(None)
        if not self._ready.called:
            self._ready.errback(reason)

    def _message(self, element: domish.Element) -> None:
        if element.getAttribute("type") != "error" and element.body is not None:
            self.messages.put(element)

    def send_chat(self, to: str, body: str, stanza_id: str | None = None) -> None:
        message = domish.Element((None, "message"))
        message["to"] = to
        message["type"] = "chat"
        if stanza_id:
            message["id"] = stanza_id
        message.addElement("body", content=body)
        self.stream.send(message)

    async def next_message(self, timeout: float = 10.0) -> domish.Element:
        d: Deferred[domish.Element] = self.messages.get()
        d.addTimeout(timeout, self.reactor)
        return await d

    async def close(self) -> None:
        if self.stream is None or self._lost.called:
            return
        with contextlib.suppress(Exception):
            self.stream.sendFooter()
            self.stream.transport.loseConnection()
        await _observe(self._lost).addTimeout(5, self.reactor)
