"""Process-wide logging for ``jb``: stdout, an optional log file, Sentry.

Twisted log events go to stdout as ``<time> [<namespace>] <LEVEL>: <text>``
(or, with ``--log-format json``, one JSON object a line: ``time``, ``level``,
``namespace``, ``message`` and ``channel_id`` / ``router_id`` / ``message_id``
when the event carries them) unless ``JUNEBUG_DISABLE_LOGGING`` is set;
``--log-file`` adds a file rotated at 1 MiB keeping 5 files, in the same
format; ``--sentry-dsn`` sends error events with a traceback to Sentry through
sentry-sdk.  Both formats mask secrets as the API does: fields named like a
password or token and the password of any ``scheme://user:password@`` show as
``***``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping
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
from junebug.http.client import redact_text
from junebug.redaction import redact

#: Event fields a JSON line carries when the event has them.
CONTEXT_FIELDS = ("channel_id", "router_id", "message_id")

Formatter = Callable[[Mapping[str, Any]], str]


def _text(event: Mapping[str, Any]) -> str:
    """The event's message (and traceback), secrets masked."""
    text = formatEvent(redact(dict(event)))
    failure = event.get("log_failure")
    if failure is not None:
        text = f"{text}\n{failure.getTraceback()}"
    return redact_text(text)


def format_line(event: Mapping[str, Any]) -> str:
    """``<time> [<namespace>] <LEVEL>: <text>`` and a newline."""
    when = datetime.fromtimestamp(event.get("log_time", 0), UTC)
    level = event.get("log_level", LogLevel.info)
    name = event.get("log_namespace", "junebug")
    return (
        f"{when:%Y-%m-%d %H:%M:%S,%f}"[:-3]
        + f" [{name}] {level.name.upper()}: {_text(event)}\n"
    )


def format_json(event: Mapping[str, Any]) -> str:
    """One JSON object and a newline: time (ISO 8601, UTC), level,
    namespace, message and the context fields the event carries."""
    when = datetime.fromtimestamp(event.get("log_time", 0), UTC)
    level = event.get("log_level", LogLevel.info)
    record: dict[str, Any] = {
        "time": when.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "level": level.name,
        "namespace": event.get("log_namespace", "junebug"),
        "message": _text(event),
    }
    for field in CONTEXT_FIELDS:
        value = event.get(field)
        if value is not None:
            record[field] = redact_text(str(value))
    return json.dumps(record, ensure_ascii=False) + "\n"


FORMATTERS: dict[str, Formatter] = {"text": format_line, "json": format_json}


@implementer(ILogObserver)
class LineObserver:
    """Writes formatted lines to a text stream."""

    def __init__(
        self, stream: IO[str] | LogFile, formatter: Formatter = format_line
    ) -> None:
        self._stream = stream
        self._format = formatter

    def __call__(self, event: Mapping[str, Any]) -> None:
        self._stream.write(self._format(event))
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
    formatter = FORMATTERS[config.log_format]
    if not environ.get("JUNEBUG_DISABLE_LOGGING"):
        observers.append(
            FilteringLogObserver(LineObserver(sys.stdout, formatter), [predicate])
        )
    if config.logfile:
        path = Path(config.logfile).resolve()
        directory, name = str(path.parent), path.name
        logfile = LogFile(name, directory, rotateLength=1_048_576, maxRotatedFiles=5)
        observers.append(
            FilteringLogObserver(LineObserver(logfile, formatter), [predicate])
        )
    if config.sentry_dsn:
        import sentry_sdk

        sentry_sdk.init(dsn=config.sentry_dsn)
        observers.append(SentryObserver())
    globalLogBeginner.beginLoggingTo(observers, redirectStandardIO=False)
