"""SIGTERM for ``jb``: the first one starts a graceful stop (the reactor
shuts down, and Junebug drains first: see :meth:`junebug.service.Junebug.stop`);
a second one, while that stop is under way, exits at once with status 1."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from types import FrameType
from typing import Any, Protocol

from twisted.logger import Logger

#: The status a second SIGTERM exits with: the drain was cut short.
FORCED_EXIT_STATUS = 1


class _StoppableReactor(Protocol):
    def callFromThread(  # noqa: N802
        self,
        callable: Callable[..., Any],  # noqa: A002 - Twisted's name
        *args: object,
        **kwargs: object,
    ) -> None: ...

    def stop(self) -> None: ...


class SigtermHandler:
    """Call with a signal number (as :func:`signal.signal` does)."""

    log = Logger()

    def __init__(
        self, reactor: _StoppableReactor, exit_now: Callable[[int], Any] = os._exit
    ) -> None:
        self._reactor = reactor
        self._exit_now = exit_now
        self.received = 0

    def __call__(self, number: int, frame: FrameType | None = None) -> None:
        self.received += 1
        if self.received == 1:
            self.log.info("Received SIGTERM: draining (a second SIGTERM exits at once)")
            self._reactor.callFromThread(self._reactor.stop)
            return
        self.log.warn("Received a second SIGTERM: exiting now")
        self._exit_now(FORCED_EXIT_STATUS)


def install_sigterm(reactor: _StoppableReactor) -> SigtermHandler:
    """Handle SIGTERM with a :class:`SigtermHandler` (in place of the
    reactor's own, which ignores a second one).  Call once the reactor runs
    (``reactor.callWhenRunning``): it installs its handlers as it starts."""
    handler = SigtermHandler(reactor)
    signal.signal(signal.SIGTERM, handler)
    return handler
