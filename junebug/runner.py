"""Run Junebug on a reactor until it shuts down (what ``jb`` does after parsing)."""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from junebug.config import JunebugConfig
from junebug.service import start_junebug

log = Logger()


async def serve_until_shutdown(
    reactor: Any, start: Callable[[], Awaitable[Any]], name: str
) -> None:
    """Await ``start()`` (exit 1 with one line if it fails), then wait until the
    reactor shuts down, calling the started thing's ``stop()`` first."""
    try:
        running = await start()
    except Exception as exc:
        log.failure("{name} could not start", name=name)
        sys.stderr.write(f"{name}: error: could not start: {exc}\n")
        raise SystemExit(1) from exc
    done: Deferred[None] = Deferred()

    async def shutdown() -> None:
        try:
            await running.stop()
        finally:
            if not done.called:
                done.callback(None)

    reactor.addSystemEventTrigger(
        "before", "shutdown", lambda: Deferred.fromCoroutine(shutdown())
    )
    await done


async def serve(reactor: Any, config: JunebugConfig) -> None:
    """Start Junebug, then wait until the reactor shuts down, stopping it first."""
    await serve_until_shutdown(reactor, lambda: start_junebug(reactor, config), "jb")


def run(reactor: Any, config: JunebugConfig) -> Deferred[None]:
    """The ``task.react`` main function."""
    return Deferred.fromCoroutine(serve(reactor, config))
