"""Installing a Debian package for tests, and running a command, off the reactor.

:func:`apt_install` installs one package with ``apt-get`` (refreshing the
package lists once if the first try fails), with ``policy-rc.d`` keeping the
packaged service from starting while it installs: tests run their own server
on free ports, and nothing may be left listening on the package's usual port.

Test processes running side by side (``pytest -n``) may install the same
package at once: one :func:`apt_install` runs at a time on the machine, under
an exclusive ``flock`` on :data:`APT_LOCK`, so no run removes ``policy-rc.d``
while another still installs, and a second install of a package finds it
installed.  The lock is polled on the reactor, never waited for in a blocking
call.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from twisted.internet import task
from twisted.internet.interfaces import IReactorTime
from twisted.internet.utils import getProcessOutputAndValue

from junebug.reactors import ProcessReactor

__all__ = ["APT_LOCK", "POLICY_RC_D", "apt_install", "machine_lock", "run_command"]

POLICY_RC_D = Path("/usr/sbin/policy-rc.d")
APT_LOCK = Path(tempfile.gettempdir()) / "junebug-tests-apt.lock"
_LOCK = ["-o", "DPkg::Lock::Timeout=300"]
LOCK_TIMEOUT_SECONDS = 900.0


async def run_command(
    reactor: ProcessReactor,
    executable: str,
    args: list[str],
    env: dict[str, str] | None = None,
) -> tuple[int, str]:
    """Run a command without blocking the reactor: its exit code and output."""
    out, err, code = await getProcessOutputAndValue(
        executable, args, env=dict(os.environ if env is None else env), reactor=reactor
    )
    return code, (out + err).decode("utf-8", "replace")


@contextlib.asynccontextmanager
async def machine_lock(
    reactor: IReactorTime,
    path: Path,
    error: type[Exception],
    timeout: float = LOCK_TIMEOUT_SECONDS,
) -> AsyncIterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (shared by every process on the
    machine) for the ``async with`` block; ``error`` after ``timeout`` seconds
    of waiting."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        waited = 0.0
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if waited >= timeout:
                    raise error(f"{path} still locked after {timeout:g}s") from None
                await task.deferLater(reactor, 0.1, lambda: None)
                waited += 0.1
        yield
    finally:
        os.close(fd)  # releases the lock


async def apt_install(
    reactor: ProcessReactor,
    package: str,
    error: type[Exception],
    options: Sequence[str] = (),
) -> None:
    """Install ``package`` (``options`` go to ``apt-get install``); ``error``
    with apt-get's output if it cannot be installed."""
    apt_get = shutil.which("apt-get")
    if apt_get is None:
        raise error(f"{package} is not installed and there is no apt-get")
    async with machine_lock(reactor, APT_LOCK, error):
        await _install(reactor, apt_get, package, error, options)


async def _install(
    reactor: ProcessReactor,
    apt_get: str,
    package: str,
    error: type[Exception],
    options: Sequence[str],
) -> None:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    install = [*_LOCK, "install", "-y", "-q", *options, package]
    made_policy = False
    if not POLICY_RC_D.exists():
        POLICY_RC_D.write_text(
            "#!/bin/sh\n# junebug tests: start no services\nexit 101\n"
        )
        POLICY_RC_D.chmod(0o755)
        made_policy = True
    try:
        code, output = await run_command(reactor, apt_get, install, env)
        if code != 0:
            # The package lists may be missing or stale: refresh them once.
            update_code, update_output = await run_command(
                reactor, apt_get, [*_LOCK, "update", "-q"], env
            )
            if update_code != 0:
                raise error(
                    f"apt-get update failed ({update_code}):\n{update_output[-2000:]}"
                )
            code, output = await run_command(reactor, apt_get, install, env)
        if code != 0:
            raise error(f"apt-get install {package} failed ({code}):\n{output[-2000:]}")
    finally:
        if made_policy:
            with contextlib.suppress(OSError):
                POLICY_RC_D.unlink()
