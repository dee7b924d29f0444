"""The from_address router on its own, over the in-memory broker and store."""

from __future__ import annotations

from typing import Any, cast

from twisted.internet import reactor
from twisted.logger import LogEvent, Logger, formatEvent
from twisted.trial.unittest import TestCase

from junebug.amqp.memory import MemoryBroker
from junebug.errors import InvalidRouterDestinationConfig
from junebug.messages import Message, ack, user_message
from junebug.routers.from_address import FromAddressRouter, channel_uuid
from junebug.routers.interface import DESTINATION_KEY, RouterDependencies
from junebug.stores.memory import MemoryBackend
from junebug.stores.messages import MessageStore
from junebug.stores.rates import RateStore
from junebug.stores.routers import RouterStore
from junebug.testing.polling import wait_until

CHANNEL = "21a12b63-21d0-44a0-a2fd-ab4f1a1b9dc9"


class _NoHttp:
    async def post_json(self, url: str, body: Any, **kwargs: Any) -> Any:
        raise AssertionError("no destination here has an mo_url")


def destination(did: str, **config: Any) -> dict[str, Any]:
    return {"id": did, "config": config}


class FromAddressRouterTests(TestCase):
    def make(self, *destinations: dict[str, Any]) -> FromAddressRouter:
        backend = MemoryBackend(reactor)
        self.broker = MemoryBroker(reactor)
        self.addCleanup(self.broker.close)
        self.messages = MessageStore(backend, 600, 3600)
        self.deps = RouterDependencies(
            reactor=reactor,
            broker=self.broker,
            messages=self.messages,
            rates=RateStore(backend, reactor, 10.0),
            http=_NoHttp(),
            channels=cast(Any, None),
            store=RouterStore(backend),
        )
        router = FromAddressRouter(
            {"id": "r1", "type": "from_address", "config": {"channel": CHANNEL}},
            list(destinations),
            self.deps,
        )
        self.logged: list[LogEvent] = []
        router.log = Logger(observer=self.logged.append)
        return router

    def log_lines(self) -> list[str]:
        return [formatEvent(event) for event in self.logged]

    async def collect(self, queue: str) -> list[Message]:
        received: list[Message] = []

        async def handler(message: Message) -> None:
            received.append(message)

        consumer = await self.broker.consume(queue, handler)
        self.addCleanup(consumer.stop)
        return received

    async def test_match_fans_out_and_falls_back_to_default(self) -> None:
        """Every matching destination; the default only when none matches."""
        router = self.make(
            destination("a", regular_expression=r"^\*120\*1"),
            destination("b", regular_expression=r"#$"),
            destination("d", default=True),
            destination("e", regular_expression="^9", default=False),
        )
        self.assertEqual(router.match("*120*1#"), ["a", "b"])
        self.assertEqual(router.match("x*120*1"), ["d"])
        self.assertEqual(router.match(None), ["d"])
        self.assertEqual(router.match("99"), ["e"])
        self.assertEqual(router.get_destination_channel("a", {}), CHANNEL)

    async def test_search_not_fullmatch(self) -> None:
        """The regex is searched anywhere in the address, as re.search does."""
        router = self.make(destination("a", regular_expression="123"))
        self.assertEqual(router.match("+2712345"), ["a"])
        self.assertEqual(router.match("+27"), [])

    async def test_inbound_published_to_destinations(self) -> None:
        """A started router consumes the channel and routes by to_addr."""
        router = self.make(
            destination("a", regular_expression="^1"),
            destination("b", regular_expression="^12"),
        )
        a = await self.collect("a.inbound")
        b = await self.collect("b.inbound")
        await router.start()
        self.addCleanup(router.stop)
        msg = user_message(to_addr="12", from_addr="+27", transport_name=CHANNEL)
        await self.broker.publish(f"{CHANNEL}.inbound", msg)
        await wait_until(lambda: a and b)
        self.assertEqual(a[0]["message_id"], msg["message_id"])
        self.assertEqual(b[0]["message_id"], msg["message_id"])
        other = user_message(to_addr="2", from_addr="+27", transport_name=CHANNEL)
        await router.handle_inbound(other)
        self.assertIn(
            f"No destination matches to address 2; dropping message "
            f"{other['message_id']}",
            self.log_lines(),
        )
        await router.handle_inbound({**other, "to_addr": None})
        self.assertIn(
            f"Message has no to address, cannot route message {other['message_id']}",
            self.log_lines(),
        )

    async def test_stop_stops_consuming(self) -> None:
        """After stop, the channel's MO waits in its queue."""
        router = self.make(destination("a", regular_expression="."))
        a = await self.collect("a.inbound")
        await router.start()
        await router.stop()
        self.assertFalse(router.running)
        await self.broker.publish(
            f"{CHANNEL}.inbound",
            user_message(to_addr="1", from_addr="2", transport_name=CHANNEL),
        )
        await router.start()
        self.addCleanup(router.stop)
        await wait_until(lambda: a)

    async def store(self, message_id: str, **record: Any) -> None:
        await self.messages.store_outbound(CHANNEL, message_id, record)

    async def test_event_to_sending_destination(self) -> None:
        """An event goes to the destination recorded with its message."""
        router = self.make(
            destination("a", regular_expression="."),
            destination("b", regular_expression="^x"),
        )
        a = await self.collect("a.event")
        b = await self.collect("b.event")
        await self.store("m1", **{"from": "x", DESTINATION_KEY: "a"})
        await router.handle_event(ack("m1", "s1", CHANNEL))
        await wait_until(lambda: a)
        self.assertEqual(b, [])

    async def test_event_for_deleted_destination_dropped(self) -> None:
        router = self.make(destination("a", regular_expression="."))
        await self.collect("a.event")
        await self.store("m1", **{"from": "x", DESTINATION_KEY: "gone"})
        event = ack("m1", "s1", CHANNEL)
        await router.handle_event(event)
        self.assertIn(
            f"Destination gone of message m1 no longer exists, not routing event "
            f"{event['event_id']}",
            self.log_lines(),
        )

    async def test_event_fallback_on_from(self) -> None:
        """Without a recorded destination, the original rule: regexes on the
        message's ``from`` (every match), then the default."""
        router = self.make(
            destination("a", regular_expression="^1"),
            destination("b", regular_expression="^12"),
            destination("d", default=True),
        )
        a = await self.collect("a.event")
        b = await self.collect("b.event")
        d = await self.collect("d.event")
        await self.store("m1", **{"from": "12"})
        await self.store("m2", **{"from": "9"})
        await self.store("m3", **{"from": None})
        for mid in ("m1", "m2", "m3"):
            await router.handle_event(ack(mid, mid, CHANNEL))
        await wait_until(lambda: a and b and len(d) == 2)
        self.assertEqual([e["user_message_id"] for e in d], ["m2", "m3"])

    async def test_event_unroutable_logged(self) -> None:
        router = self.make(destination("a", regular_expression="^1"))
        await self.store("m1", **{"from": None})
        event = ack("m1", "s", CHANNEL)
        await router.handle_event(event)
        await router.handle_event(ack("m2", "s", CHANNEL))
        await router.handle_event({**event, "user_message_id": None})
        lines = self.log_lines()
        self.assertIn(
            f"Message m1 has no from address matching a destination, cannot route "
            f"event {event['event_id']}",
            lines,
        )
        self.assertTrue(any("Cannot find message m2 for event" in x for x in lines))
        self.assertTrue(any("has no user_message_id" in x for x in lines))

    async def test_outbound_from_destination_queue(self) -> None:
        """MT from a destination's amqp_queue is recorded under the channel
        (marked with the destination) and relayed to the channel."""
        router = self.make(
            {**destination("a", regular_expression="."), "amqp_queue": "app"}
        )
        outbound = await self.collect(f"{CHANNEL}.outbound")
        await router.start()
        self.addCleanup(router.stop)
        mt = user_message(to_addr="+1", from_addr="2", transport_name=CHANNEL)
        await self.broker.publish("app.outbound", mt)
        await wait_until(lambda: outbound)
        self.assertEqual(outbound[0]["message_id"], mt["message_id"])
        record = await self.messages.load_outbound(CHANNEL, mt["message_id"])
        assert record is not None
        self.assertEqual(record[DESTINATION_KEY], "a")
        self.assertEqual(record["to"], "+1")

    async def validate(self, config: Any, others: Any = ()) -> str:
        router = self.make()
        try:
            await FromAddressRouter.validate_destination_config(
                router.deps, config, router_id="r1", others=list(others)
            )
        except InvalidRouterDestinationConfig as exc:
            return str(exc)
        return ""

    async def test_destination_validation(self) -> None:
        self.assertEqual(await self.validate({"regular_expression": "^1"}), "")
        self.assertEqual(await self.validate({"default": True}), "")
        self.assertEqual(
            await self.validate({}),
            "Missing required config field 'regular_expression'",
        )
        self.assertEqual(
            await self.validate({"regular_expression": None, "default": False}),
            "Missing required config field 'regular_expression'",
        )
        self.assertTrue(
            (await self.validate({"regular_expression": "["})).startswith(
                "Field 'regular_expression' is not a valid regular expression: "
            )
        )
        self.assertEqual(
            await self.validate({"regular_expression": 5}),
            "Field 'regular_expression' is not a valid regular expression: "
            "it is not a string",
        )
        self.assertEqual(
            await self.validate({"default": 1}), "Field 'default' is not a boolean"
        )
        self.assertEqual(
            await self.validate({"default": True}, [destination("x", default=True)]),
            "Destination x is already the default destination of router r1; "
            "only one destination may be the default",
        )
        self.assertEqual(
            await self.validate({"default": True}, [destination("x", default=False)]),
            "",
        )

    def test_channel_uuid(self) -> None:
        self.assertEqual(channel_uuid(CHANNEL.upper()), CHANNEL)
        self.assertEqual(channel_uuid(CHANNEL.replace("-", "")), CHANNEL)
        self.assertIsNone(channel_uuid("nope"))
        self.assertIsNone(channel_uuid(5))

    async def test_stored_invalid_regex_matches_nothing(self) -> None:
        """A stored expression that does not compile never stops the router."""
        router = self.make(
            destination("a", regular_expression="("),
            destination("b", regular_expression="^1"),
        )
        self.assertEqual(router.match("1("), ["b"])
