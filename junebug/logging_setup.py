"""Process-wide logging for ``jb``: stdout, an optional log file, Sentry.

Twisted log events go to stdout as ``<time> [<namespace>] <LEVEL>: <text>``
unless ``JUNEBUG_DISABLE_LOGGING`` is set; ``--log-file`` adds a file rotated at
1 MiB keeping 5 files; ``--sentry-dsn`` sends error events with a traceback to
Sentry through sentry-sdk.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from twisted.logger import (
    FilteringLogObserver,
    ILogObserver,
    LogLevel,
    LogLevelFilterPredicate,
    formatEvent,
    globalLogBeginner,
)
from twisted.python.logfile import LogFile
from zope.interface import implementer

from junebug.config import JunebugConfig


def format_line(event: Mapping[str, Any]) -> str:
    when = datetime.fromtimestamp(event.get("log_time", 0), UTC)
    level = event.get("log_level", LogLevel.info)
    name = event.get("log_namespace", "junebug")
    text = formatEvent(dict(event))
    failure = event.get("log_failure")
    if failure is not None:
        text = f"{text}\n{failure.getTraceback()}"
    return (
        f"{when:%Y-%m-%d %H:%M:%S,%f}"[:-3]
        + f" [{name}] {level.name.upper()}: {text}\n"
    )


@implementer(ILogObserver)
class LineObserver:
    """Writes formatted lines to a text stream."""

    def __init__(self, stream: IO[str] | LogFile) -> None:
        self._stream = stream

    def __call__(self, event: Mapping[str, Any]) -> None:
        self._stream.write(format_line(event))
        self._stream.flush()


@implementer(ILogObserver)
class SentryObserver:
    """Sends error events that carry a failure to Sentry."""

    def __call__(self, event: Mapping[str, Any]) -> None:
        failure = event.get("log_failure")
        if failure is None:
            return
        import sentry_sdk

        sentry_sdk.capture_exception(
            (failure.type, failure.value, failure.getTracebackObject())
        )


def setup_logging(config: JunebugConfig, environ: Mapping[str, str]) -> None:
    """Install the observers ``jb`` logs through."""
    observers: list[ILogObserver] = []
    predicate = LogLevelFilterPredicate(defaultLogLevel=LogLevel.info)
    if not environ.get("JUNEBUG_DISABLE_LOGGING"):
        observers.append(FilteringLogObserver(LineObserver(sys.stdout), [predicate]))
    if config.logfile:
        path = Path(config.logfile).resolve()
        directory, name = str(path.parent), path.name
        logfile = LogFile(name, directory, rotateLength=1_048_576, maxRotatedFiles=5)
        observers.append(FilteringLogObserver(LineObserver(logfile), [predicate]))
    if config.sentry_dsn:
        import sentry_sdk

        sentry_sdk.init(dsn=config.sentry_dsn)
        observers.append(SentryObserver())
    globalLogBeginner.beginLoggingTo(observers, redirectStandardIO=False)
