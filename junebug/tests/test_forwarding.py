"""Forwarder: templated mo_url/event_url are filled once; plain URLs untouched."""

from __future__ import annotations

from typing import Any

from twisted.internet.task import Clock
from twisted.logger import Logger
from twisted.trial.unittest import TestCase

from junebug.amqp.memory import MemoryBroker
from junebug.channels.forwarding import Forwarder
from junebug.http import url_templates
from junebug.http.client import HttpResult
from junebug.messages import ack, user_message
from junebug.stores.memory import MemoryBackend
from junebug.stores.messages import MessageStore
from junebug.stores.rates import RateStore


class RecordingPoster:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    async def post_json(self, url: str, body: Any, **options: Any) -> HttpResult:
        self.calls.append((url, options))
        return HttpResult(ok=True, code=200)


class ForwarderUrlTests(TestCase):
    def make(self, mo_url: str) -> tuple[Forwarder, RecordingPoster]:
        clock = Clock()
        backend = MemoryBackend(clock)
        broker = MemoryBroker(clock)
        self.addCleanup(broker.close)
        poster = RecordingPoster()
        forwarder = Forwarder(
            owner_id="chan",
            broker=broker,
            messages=MessageStore(backend, 600, 600),
            rates=RateStore(backend, clock, 10),
            http=poster,
            log=Logger(),
            mo_url=mo_url,
        )
        return forwarder, poster

    def mo(self) -> dict[str, Any]:
        return user_message(
            to_addr="1", from_addr="+2 7", content="hi", transport_name="chan"
        )

    async def test_plain_mo_url_takes_the_fast_path(self) -> None:
        """A URL without variables is posted as the very same string, with no
        values built and no breaker key."""
        url = "http://x/mo%20box?a=%41"
        forwarder, poster = self.make(url)

        def no_values(*args: Any) -> Any:
            raise AssertionError("values built for a plain URL")

        self.patch(url_templates, "mo_values", no_values)
        await forwarder.handle_inbound(self.mo())
        self.assertEqual(len(poster.calls), 1)
        self.assertIs(poster.calls[0][0], url)
        self.assertNotIn("breaker_key", poster.calls[0][1])

    async def test_templated_mo_url_is_filled_once(self) -> None:
        """A templated URL is filled and names its template as breaker key."""
        template = "http://x/mo?from=%p&ch=%i"
        forwarder, poster = self.make(template)
        mo = self.mo()
        await forwarder.handle_inbound(mo)
        about = {"channel_id": "chan", "message_id": mo["message_id"]}
        self.assertEqual(
            poster.calls,
            [
                (
                    "http://x/mo?from=%2B2%207&ch=chan",
                    {
                        "token": None,
                        "timeout": 10.0,
                        "breaker_key": template,
                        "about": about,
                    },
                )
            ],
        )

    async def test_templated_event_url_uses_the_stored_message(self) -> None:
        """to/from of an event URL come from the stored outbound record."""
        forwarder, poster = self.make("http://x/mo")
        template = "http://x/ev?to={to}&from={from}&d=%d&id=%I"
        await forwarder.messages.store_outbound(
            "chan", "m1", {"to": "+1", "from": "2", "event_url": template}
        )
        await forwarder.handle_event(ack("m1", "s1", "chan"))
        self.assertEqual(poster.calls[0][0], "http://x/ev?to=%2B1&from=2&d=8&id=m1")
        self.assertEqual(poster.calls[0][1]["breaker_key"], template)
