"""Installing a Debian package for tests, and running a command, off the reactor.

:func:`apt_install` installs one package with ``apt-get`` (refreshing the
package lists once if the first try fails), with ``policy-rc.d`` keeping the
packaged service from starting while it installs: tests run their own server
on free ports, and nothing may be left listening on the package's usual port.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from twisted.internet.utils import getProcessOutputAndValue

from junebug.reactors import ProcessReactor

__all__ = ["POLICY_RC_D", "apt_install", "run_command"]

POLICY_RC_D = Path("/usr/sbin/policy-rc.d")
_LOCK = ["-o", "DPkg::Lock::Timeout=300"]


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
