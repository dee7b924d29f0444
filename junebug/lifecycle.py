"""Start a service part by part; stop it in reverse.

:class:`StopStack` records how to stop each part as it starts.  Unwinding it
stops the most recently started part first; a stop that fails is logged and
the remaining parts are still stopped.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from twisted.logger import Logger


class StopStack:
    """The stops of the parts started so far, last started on top."""

    log = Logger()

    def __init__(self) -> None:
        self._stops: list[tuple[str, Callable[[], Any]]] = []

    def push(self, part: str, stop: Callable[[], Any]) -> None:
        """Record that ``part`` has started and ``stop()`` undoes it.

        ``stop`` may return an awaitable (a Deferred or a coroutine).
        """
        self._stops.append((part, stop))

    @property
    def parts(self) -> list[str]:
        """The parts to stop, in the order :meth:`unwind` stops them."""
        return [part for part, _stop in reversed(self._stops)]

    async def unwind(self) -> None:
        """Stop every recorded part, newest first, logging failed stops."""
        while self._stops:
            part, stop = self._stops.pop()
            try:
                result = stop()
                if inspect.isawaitable(result):
                    await result
            except Exception:
                self.log.failure("Stopping {part} failed; going on", part=part)
