"""Run Junebug on a reactor until it shuts down (what ``jb`` does after parsing)."""

from __future__ import annotations

import sys
from typing import Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from junebug.config import JunebugConfig
from junebug.service import start_junebug

log = Logger()


async def serve(reactor: Any, config: JunebugConfig) -> None:
    """Start Junebug, then wait until the reactor shuts down, stopping it first."""
    try:
        junebug = await start_junebug(reactor, config)
    except Exception as exc:
        log.failure("Junebug could not start")
        sys.stderr.write(f"jb: error: could not start: {exc}\n")
        raise SystemExit(1) from exc
    done: Deferred[None] = Deferred()

    async def shutdown() -> None:
        try:
            await junebug.stop()
        finally:
            if not done.called:
                done.callback(None)

    reactor.addSystemEventTrigger(
        "before", "shutdown", lambda: Deferred.fromCoroutine(shutdown())
    )
    await done


def run(reactor: Any, config: JunebugConfig) -> Deferred[None]:
    """The ``task.react`` main function."""
    return Deferred.fromCoroutine(serve(reactor, config))
