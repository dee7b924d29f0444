"""Control messages: errors travel back as the owner raised them."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from junebug.cluster.control import control_queue, error_from_reply, error_reply
from junebug.errors import (
    ChannelNotFound,
    InvalidBody,
    InvalidChannelConfig,
    JunebugError,
    StoreUnavailable,
)


class ErrorReplyTests(SynchronousTestCase):
    def test_round_trip_keeps_type_code_and_message(self) -> None:
        for error in (
            ChannelNotFound("no such channel"),
            InvalidChannelConfig("bad port"),
            StoreUnavailable("Redis GET: timed out"),
        ):
            again = error_from_reply(error_reply(error))
            self.assertIs(type(again), type(error))
            self.assertEqual(str(again), str(error))
            self.assertEqual(again.code, error.code)

    def test_schema_errors_are_kept(self) -> None:
        errors = [{"type": "invalid_body", "message": "x", "schema_path": []}]
        again = error_from_reply(error_reply(InvalidBody(errors)))
        assert isinstance(again, InvalidBody)
        self.assertEqual(again.errors, errors)

    def test_unknown_error_is_a_generic_one(self) -> None:
        again = error_from_reply({"type": "Whatever", "message": "m"})
        self.assertIs(type(again), JunebugError)
        self.assertEqual(again.code, 500)

    def test_queue_name(self) -> None:
        self.assertEqual(control_queue("ab12"), "junebug.control.ab12")
