"""Control messages: errors travel back as the owner raised them, and a
request that cannot reach the owner is a 503."""

from __future__ import annotations

from twisted.internet import task
from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase, TestCase

from junebug.amqp.memory import MemoryBroker
from junebug.cluster.control import (
    Control,
    control_queue,
    error_from_reply,
    error_reply,
)
from junebug.errors import (
    AmqpConnectionError,
    ChannelNotFound,
    InvalidBody,
    InvalidChannelConfig,
    JunebugError,
    OwnerUnavailable,
    PublishOutcomeUnknown,
    StoreUnavailable,
)
from junebug.messages import Message
from junebug.stores import keys
from junebug.stores.memory import MemoryBackend


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


class _Stub:
    """The registry and reconciler, as far as asking another process goes."""

    me = "here"

    def __init__(self) -> None:
        self.dropped: list[str] = []

    async def drop(self, channel_id: str) -> None:
        self.dropped.append(channel_id)


class AskingTests(TestCase):
    """A change sent to the owner: a broker error is a 503, never a 500."""

    async def setUp(self) -> None:  # type: ignore[override]
        self.clock = task.Clock()
        self.broker = MemoryBroker(self.clock)
        self.backend = MemoryBackend(self.clock)
        self.stub = _Stub()
        self.control = Control(
            broker=self.broker,
            backend=self.backend,
            clock=self.clock,
            registry=self.stub,  # type: ignore[arg-type]
            reconciler=self.stub,  # type: ignore[arg-type]
            timeout=5,
        )
        await self.control.start()
        self.addCleanup(self.control.stop)
        await self.backend.set(keys.cluster_owner("c1"), "there:1")
        await self.backend.set(keys.cluster_process("there"), "{}")

    async def test_a_request_that_cannot_be_sent_changes_nothing(self) -> None:
        self.broker.disconnect()
        with self.assertRaises(AmqpConnectionError) as raised:
            await self.control.delete("c1")
        self.assertEqual(raised.exception.code, 503)
        self.assertIn("nothing was changed", str(raised.exception))
        self.assertEqual(self.stub.dropped, [])
        self.clock.advance(10)  # its reply timer was cancelled, not left

    async def test_an_unconfirmed_request_still_waits_for_its_reply(self) -> None:
        sent: list[Message] = []

        async def unconfirmed(
            routing_key: str, message: Message, ttl: float | None = None
        ) -> None:
            sent.append(message)
            raise PublishOutcomeUnknown("sent but not confirmed")

        self.broker.publish = unconfirmed  # type: ignore[assignment]
        deleting = Deferred.fromCoroutine(self.control.delete("c1"))
        [request] = sent
        await self.control._handle(
            {"kind": "reply", "request_id": request["request_id"], "ok": True}
        )
        await deleting
        self.assertEqual(self.stub.dropped, ["c1"])

    async def test_no_reply_is_owner_unavailable(self) -> None:
        deleting = Deferred.fromCoroutine(self.control.delete("c1"))
        self.clock.advance(5)
        with self.assertRaises(OwnerUnavailable) as raised:
            await deleting
        self.assertEqual(raised.exception.code, 503)
