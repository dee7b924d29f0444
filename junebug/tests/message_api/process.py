"""Run ``jb message-api`` as a real subprocess (``python -m junebug message-api``)."""

from __future__ import annotations

import os
import sys
from typing import Any

from twisted.internet import task

from junebug.tests.support.process import JbProcess, ProcessOutput


class MessageApiProcess(JbProcess):
    """``python -m junebug message-api <args>``; ``port`` is its ``http_bind`` port."""

    READY = "Junebug message API is listening on"

    def __init__(self, reactor: Any, args: list[str], port: int) -> None:
        super().__init__(reactor, args, port)

    async def start(self, timeout: float = 30.0) -> None:
        self._proto = ProcessOutput()
        env = dict(os.environ)
        env.setdefault("PYTHONUNBUFFERED", "1")
        argv = [sys.executable, "-m", "junebug", "message-api", *self.args]
        self._transport = self.reactor.spawnProcess(
            self._proto, sys.executable, argv, env=env
        )
        waited = 0.0
        while waited < timeout:
            if self._proto.ended.called:
                raise RuntimeError(f"jb message-api exited early:\n{self.output}")
            if self.READY in self.output:
                return
            await task.deferLater(self.reactor, 0.05, lambda: None)
            waited += 0.05
        raise TimeoutError(
            f"jb message-api did not start in {timeout}s:\n{self.output}"
        )

    async def exit_code(self, timeout: float = 30.0) -> int:
        """Wait for the process to end by itself; return its exit code."""
        assert self._proto is not None
        code: int = await self._proto.ended.addTimeout(timeout, self.reactor)
        return code
