"""Process logging of ``jb``: line format and Sentry reporting."""

from __future__ import annotations

import io
import json
from typing import Any

import sentry_sdk
from twisted.logger import LogLevel
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from junebug.config import JunebugConfig
from junebug.logging_setup import (
    FORMATTERS,
    LineObserver,
    SentryObserver,
    format_json,
    format_line,
)


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


def event(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "log_time": 1.5,
        "log_level": LogLevel.info,
        "log_namespace": "junebug.channel",
    }
    base.update(fields)
    return base


class LogFormatTests(SynchronousTestCase):
    def test_json_line(self) -> None:
        """--log-format json: one object a line with time, level, namespace,
        message and the channel and message ids the event carries."""
        line = format_json(
            event(
                log_format="Nacking {message_id}: {reason}",
                message_id="m1",
                reason="bad",
                channel_id="c1",
                log_level=LogLevel.warn,
            )
        )
        self.assertTrue(line.endswith("\n"))
        self.assertEqual(line.count("\n"), 1)
        self.assertEqual(
            json.loads(line),
            {
                "time": "1970-01-01T00:00:01.500Z",
                "level": "warn",
                "namespace": "junebug.channel",
                "message": "Nacking m1: bad",
                "channel_id": "c1",
                "message_id": "m1",
            },
        )
        self.assertNotIn("channel_id", json.loads(format_json(event(log_format="x"))))

    def test_json_traceback_stays_on_one_line(self) -> None:
        try:
            raise ValueError("boom")
        except ValueError:
            failure = Failure()
        line = format_json(event(log_format="oops", log_failure=failure))
        self.assertEqual(line.count("\n"), 1)
        message = json.loads(line)["message"]
        self.assertTrue(message.startswith("oops\nTraceback"))
        self.assertIn("ValueError: boom", message)

    def test_secrets_masked_in_both_formats(self) -> None:
        """Secret fields, secrets inside a logged config and URL passwords
        show as *** in text and JSON lines alike."""
        logged = event(
            log_format="config {config} password {password} via {url}; "
            "failed amqp://jb:hunter2@rabbit/",
            config={"system_id": "esme", "password": "s3cret", "token": "t0k"},
            password="pa55",
            url="http://user:letmein@example.com/mo",
            channel_id="c1",
        )
        for formatter in (format_line, format_json):
            line = formatter(logged)
            for secret in ("s3cret", "t0k", "pa55", "letmein", "hunter2"):
                self.assertNotIn(secret, line, (formatter, line))
            self.assertIn("esme", line)
            self.assertIn("user:***@example.com", line)
            self.assertIn("jb:***@rabbit", line)

    def test_text_stays_the_default(self) -> None:
        self.assertEqual(JunebugConfig().log_format, "text")
        self.assertIs(FORMATTERS["text"], format_line)
        stream = io.StringIO()
        LineObserver(stream, FORMATTERS["json"])(event(log_format="hi"))
        self.assertEqual(json.loads(stream.getvalue())["message"], "hi")
