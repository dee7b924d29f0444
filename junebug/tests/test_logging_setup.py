"""Process logging of ``jb``: line format and Sentry reporting."""

from __future__ import annotations

import io
from typing import Any

import sentry_sdk
from twisted.logger import LogLevel
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from junebug.logging_setup import LineObserver, SentryObserver, format_line


class LoggingTests(SynchronousTestCase):
    def test_line_format(self) -> None:
        """Lines read '<time> [<namespace>] <LEVEL>: <text>'."""
        line = format_line(
            {
                "log_time": 0.0,
                "log_level": LogLevel.warn,
                "log_namespace": "junebug.x",
                "log_format": "hello {who}",
                "who": "you",
            }
        )
        self.assertEqual(line, "1970-01-01 00:00:00,000 [junebug.x] WARN: hello you\n")
        stream = io.StringIO()
        LineObserver(stream)({"log_time": 0.0, "log_format": "x"})
        self.assertIn("INFO: x", stream.getvalue())

    def test_failures_go_to_sentry(self) -> None:
        """An error event carrying a failure is sent to Sentry; others are not."""
        sent: list[Any] = []

        class Transport(sentry_sdk.transport.Transport):
            def capture_envelope(self, envelope: Any) -> None:
                sent.append(envelope)

        sentry_sdk.init(dsn="http://key@127.0.0.1:1/1", transport=Transport())
        self.addCleanup(lambda: sentry_sdk.init(dsn=None))
        observer = SentryObserver()
        observer({"log_format": "no failure"})
        try:
            raise ValueError("boom")
        except ValueError:
            failure = Failure()
        observer({"log_format": "oops", "log_failure": failure})
        sentry_sdk.flush()
        self.assertEqual(len(sent), 1)
        self.assertIn(b"boom", sent[0].serialize())
