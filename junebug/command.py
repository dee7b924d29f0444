"""What both commands (``jb`` and ``jb message-api``) do besides configuration:
fail with one line and exit code 2, and install the reactor ``JUNEBUG_REACTOR``
names.  Only the commands touch the global reactor."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, NoReturn

if TYPE_CHECKING:
    from twisted.internet.interfaces import IReactorCore

REACTORS = {
    "SELECT": "twisted.internet.selectreactor",
    "POLL": "twisted.internet.pollreactor",
    "KQUEUE": "twisted.internet.kqreactor",
    "WFMO": "twisted.internet.win32eventreactor",
    "IOCP": "twisted.internet.iocpreactor.reactor",
    "EPOLL": "twisted.internet.epollreactor",
}


def fail(message: str) -> NoReturn:
    """Report a usage or configuration error in one line and exit with code 2."""
    sys.stderr.write(f"jb: error: {message}\n")
    raise SystemExit(2)


def install_reactor(environ: dict[str, str] | os._Environ[str]) -> IReactorCore:
    """Install the reactor ``JUNEBUG_REACTOR`` names, then return the reactor
    (for ``task.react``, which hands it to the command's ``run``)."""
    choice = environ.get("JUNEBUG_REACTOR", "DEFAULT").upper() or "DEFAULT"
    if choice != "DEFAULT":
        if choice not in REACTORS:
            fail(f"Unsupported JUNEBUG_REACTOR setting {choice!r}")
        module = __import__(REACTORS[choice], fromlist=["install"])
        try:
            module.install()
        except Exception as exc:
            fail(f"Cannot use the {choice} reactor here: {exc}")
    from twisted.internet import reactor

    return reactor
