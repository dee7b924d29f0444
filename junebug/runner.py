"""Run Junebug on a reactor until it shuts down (what ``jb`` does after parsing)."""

from __future__ import annotations

import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn

from twisted.internet.defer import Deferred
from twisted.internet.endpoints import AdoptedStreamServerEndpoint
from twisted.logger import Logger

from junebug.config import JunebugConfig
from junebug.reactors import JunebugReactor
from junebug.service import build
from junebug.shutdown_signal import install_sigterm
from junebug.worker_processes import WorkerRole, watch_supervisor

log = Logger()


async def serve_until_shutdown(
    reactor: JunebugReactor, start: Callable[[], Awaitable[Any]], name: str
) -> None:
    """Await ``start()`` (exit 1 with one line if it fails), then wait until the
    reactor shuts down, calling the started thing's ``stop()`` first."""
    try:
        running = await start()
    except Exception as exc:
        _could_not_start(name, exc)
    await _until_shutdown(reactor, running.stop)


def _could_not_start(name: str, exc: Exception) -> NoReturn:
    log.failure("{name} could not start", name=name)
    sys.stderr.write(f"{name}: error: could not start: {exc}\n")
    raise SystemExit(1) from exc


async def _until_shutdown(
    reactor: JunebugReactor, stop: Callable[[], Awaitable[Any]]
) -> None:
    """Wait until the reactor shuts down, awaiting ``stop()`` first."""
    done: Deferred[None] = Deferred()

    async def shutdown() -> None:
        try:
            await stop()
        finally:
            if not done.called:
                done.callback(None)

    reactor.addSystemEventTrigger(
        "before", "shutdown", lambda: Deferred.fromCoroutine(shutdown())
    )
    await done


async def serve(
    reactor: JunebugReactor, config: JunebugConfig, role: WorkerRole | None = None
) -> None:
    """Build Junebug and start it, stopping it when the reactor shuts down
    (even while it still waits for Redis or RabbitMQ).  A worker of ``jb
    --workers`` (``role``) serves on the socket it inherited and stops when
    its supervisor has gone."""
    listen_on = None
    if role is not None:
        listen_on = AdoptedStreamServerEndpoint(reactor, role.fileno, role.family)
    try:
        junebug = build(
            reactor,
            config,
            listen_on=listen_on,
            listen_when_ready=role is not None and role.listen_when_ready,
            worker=None if role is None else role.index,
        )
    except Exception as exc:
        _could_not_start("jb", exc)
    if role is not None:
        log.info(
            "Worker {role} (pid {pid}) serves the API on the supervisor's socket",
            role=role.describe(),
            pid=os.getpid(),
        )
        watch_supervisor(reactor, role.supervisor)
    stopped = Deferred.fromCoroutine(_until_shutdown(reactor, junebug.stop))
    try:
        await junebug.start()
    except Exception as exc:
        if junebug.stopping:
            # shut down while starting: a normal stop
            await stopped
            return
        _could_not_start("jb", exc)
    await stopped


def run(
    reactor: JunebugReactor, config: JunebugConfig, role: WorkerRole | None = None
) -> Deferred[None]:
    """The ``task.react`` main function.  ``react`` calls it before the
    reactor runs, and the reactor installs its own signal handlers as it
    starts: ours replaces its SIGTERM handler once it is running."""
    reactor.callWhenRunning(install_sigterm, reactor)
    return Deferred.fromCoroutine(serve(reactor, config, role))
