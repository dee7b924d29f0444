"""Durable HTTP retries: backoff through the broker, dead letters, the breaker."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.task import Clock
from twisted.logger import formatEvent, globalLogPublisher
from twisted.trial.unittest import TestCase

from junebug.amqp.memory import MemoryBroker
from junebug.http.client import HttpResult
from junebug.http.delivery import DEAD_QUEUE, RETRY_QUEUE, HttpDelivery
from junebug.messages import Message


class ScriptedHttp:
    """Answers posts with scripted results (the last one repeats)."""

    def __init__(self, *results: HttpResult) -> None:
        self.results = list(results)
        self.calls: list[tuple[str, Any, str | None]] = []

    async def post_json(
        self, url: str, body: Any, *, token: str | None = None, timeout: float = 10.0
    ) -> HttpResult:
        self.calls.append((url, body, token))
        return self.results.pop(0) if len(self.results) > 1 else self.results[0]


class SlowConfirmBroker(MemoryBroker):
    """Routes each publish at once but holds its confirm while ``holding``,
    as RabbitMQ does with a message it has taken but not yet confirmed."""

    holding = False

    def __init__(self, clock: Clock) -> None:
        super().__init__(clock)
        self.held: list[Deferred[None]] = []

    async def publish(self, routing_key: str, message: Message) -> None:
        await super().publish(routing_key, message)
        if self.holding:
            confirm: Deferred[None] = Deferred()
            self.held.append(confirm)
            await confirm


OK = HttpResult(ok=True, code=200)
DOWN = HttpResult(ok=False, code=None, error="ConnectionRefusedError: refused")
BUSY = HttpResult(ok=False, code=503, body="busy")
BAD = HttpResult(ok=False, code=400, body="bad request")
REFUSED = HttpResult(
    ok=False,
    code=None,
    error="refused: 127.0.0.1 is in the denied callback network 127.0.0.0/8",
    refused=True,
)


class DeliveryTestCase(TestCase):
    async def make(
        self, *results: HttpResult, **options: Any
    ) -> tuple[HttpDelivery, ScriptedHttp]:
        self.clock = Clock()
        self.clock.advance(1_000_000)
        self.broker = SlowConfirmBroker(self.clock)
        http = ScriptedHttp(*results)
        delivery = HttpDelivery(self.clock, http, self.broker, **options)  # type: ignore[arg-type]
        await delivery.start()
        self.addCleanup(self.broker.close)
        self.addCleanup(delivery.stop)
        return delivery, http

    def run_for(self, seconds: float) -> None:
        for _ in range(int(seconds)):
            self.clock.advance(1)
            self.clock.advance(0)


class HttpDeliveryTests(DeliveryTestCase):
    async def test_success_needs_no_retry(self) -> None:
        """A delivered post is not retried."""
        delivery, http = await self.make(OK)
        result = await delivery.post_json("http://x/mo", {"a": 1}, token="t")
        self.assertTrue(result.ok)
        self.run_for(10)
        self.assertEqual(http.calls, [("http://x/mo", {"a": 1}, "t")])

    async def test_failures_are_retried_until_delivered(self) -> None:
        """Refused and 5xx posts are retried later, with body and token."""
        delivery, http = await self.make(DOWN, BUSY, OK)
        result = await delivery.post_json("http://x/mo", {"a": 1}, token="t")
        self.assertFalse(result.ok)
        self.assertEqual(self.broker.pending(RETRY_QUEUE), 0)
        self.run_for(60)
        self.assertEqual(len(http.calls), 3)
        self.assertEqual(http.calls[-1], ("http://x/mo", {"a": 1}, "t"))
        self.assertEqual(self.broker.queue_messages(DEAD_QUEUE), [])

    async def test_retries_and_dead_letter_name_what_they_are_about(self) -> None:
        """With ``about``, each retry and the dead letter are logged with the
        channel and message ids (so they land in those logs)."""
        events: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        delivery, _http = await self.make(DOWN, BUSY, BAD)
        about = {"channel_id": "c1", "message_id": "m1"}
        await delivery.post_json("http://x/ev", {"e": 1}, about=about)
        self.run_for(60)
        mine = [
            formatEvent(e)
            for e in events
            if e.get("channel_id") == "c1" and e.get("message_id") == "m1"
        ]
        self.assertEqual(len(mine), 3, mine)
        self.assertIn("retry in", mine[0])
        self.assertIn("retry in", mine[1])
        self.assertIn("Giving up on delivery to http://x/ev", mine[2])

    async def test_client_errors_go_straight_to_dead_letters(self) -> None:
        """A 400 will not change by waiting: it is dead-lettered at once."""
        delivery, _http = await self.make(BAD)
        await delivery.post_json("http://u:secret@x/ev", {"e": 1}, token="tok")
        self.clock.advance(0)
        dead = self.broker.queue_messages(DEAD_QUEUE)
        self.assertEqual(len(dead), 1)
        letters = await delivery.dead_letters(10)
        self.assertEqual(letters[0]["url"], "http://u:***@x/ev")
        self.assertNotIn("token", letters[0])
        self.assertEqual(letters[0]["body"], {"e": 1})
        self.assertEqual(len(self.broker.queue_messages(DEAD_QUEUE)), 1)

    async def test_retries_stop_at_max_age_then_replay(self) -> None:
        """After max_age the delivery is dead; a replay tries it again."""
        delivery, http = await self.make(DOWN, max_age=60.0)
        await delivery.post_json("http://x/mo", {"a": 1})
        self.run_for(200)
        self.assertEqual(len(self.broker.queue_messages(DEAD_QUEUE)), 1)
        calls = len(http.calls)
        self.assertGreater(calls, 2)
        http.results = [OK]
        replayed = await delivery.replay_dead_letters(10)
        self.assertEqual(replayed, 1)
        self.clock.advance(0)
        self.assertEqual(len(http.calls), calls + 1)
        self.assertEqual(self.broker.queue_messages(DEAD_QUEUE), [])

    async def test_dead_letters_never_show_the_answer_body(self) -> None:
        """last_error is the status and its phrase; the receiver's body (which
        may hold anything it cares to say) is never shown (#12.9)."""
        delivery, _http = await self.make(BUSY, BAD)
        await delivery.post_json("http://x/ev", {"e": 1})
        self.run_for(60)
        [letter] = await delivery.dead_letters(10)
        self.assertEqual(letter["last_error"], "HTTP 400 Bad Request")

    async def test_older_dead_letters_hide_the_body_too(self) -> None:
        """Letters dead-lettered by an older version carry "HTTP 400: <body>";
        the listing shows only the status."""
        delivery, _http = await self.make(OK)
        await self.broker.publish(
            DEAD_QUEUE, {"url": "http://x/", "last_error": "HTTP 404: <html>nginx"}
        )
        [letter] = await delivery.dead_letters(10)
        self.assertEqual(letter["last_error"], "HTTP 404 Not Found")

    async def test_refused_delivery_is_dead_at_once(self) -> None:
        """A delivery refused by the callback networks is logged and
        dead-lettered with the reason, never retried (#12.9)."""
        delivery, http = await self.make(REFUSED)
        result = await delivery.post_json("http://hooks.example/ev", {"e": 1})
        self.assertTrue(result.refused)
        self.run_for(120)
        self.assertEqual(len(http.calls), 1)
        [letter] = await delivery.dead_letters(10)
        self.assertEqual(letter["last_error"], REFUSED.error)
        self.assertEqual(letter["attempts"], 0)

    async def test_listing_stops_at_the_queue_length(self) -> None:
        """Asking for more dead letters than there are lists each one once,
        oldest first, and leaves the queue as it was (#12.10)."""
        delivery, _http = await self.make(BAD)
        for i in range(46):
            await delivery.post_json("http://x/ev", {"n": i})
        letters = await delivery.dead_letters(100)
        self.assertEqual([letter["body"]["n"] for letter in letters], list(range(46)))
        dead = self.broker.queue_messages(DEAD_QUEUE)
        self.assertEqual([job["body"]["n"] for job in dead], list(range(46)))
        self.assertEqual(len(await delivery.dead_letters(10)), 10)

    async def test_abandoned_listing_leaves_no_copies(self) -> None:
        """A listing whose caller goes away half-way leaves no extra copy."""
        delivery, _http = await self.make(BAD)
        await delivery.post_json("http://x/ev", {"n": 1})
        self.broker.holding = True
        listing = Deferred.fromCoroutine(delivery.dead_letters(10))
        listing.cancel()
        listing.addErrback(lambda f: f.trap(CancelledError))
        for confirm in self.broker.held:
            confirm.callback(None)
        self.clock.advance(0)
        self.assertEqual(len(self.broker.queue_messages(DEAD_QUEUE)), 1)

    async def test_cancelled_replay_still_finishes(self) -> None:
        """A replay whose caller goes away still moves each letter exactly
        once: nothing stays dead that was already sent to be retried."""
        delivery, http = await self.make(BAD)
        await delivery.post_json("http://x/ev", {"n": 1})
        http.results = [OK]
        self.broker.holding = True
        replay = delivery.replay_dead_letters(10)
        replay.cancel()
        self.failureResultOf(replay, CancelledError)
        self.broker.holding = False
        for confirm in self.broker.held:
            confirm.callback(None)
        self.clock.advance(0)
        self.assertEqual(self.broker.queue_messages(DEAD_QUEUE), [])
        self.assertEqual(http.calls[-1][1], {"n": 1})
        self.assertEqual(len(http.calls), 2)

    async def test_a_replay_takes_each_letter_once(self) -> None:
        """A letter refused again while the replay still runs is dead again,
        not replayed a second time by the same replay."""
        delivery, http = await self.make(BAD)
        await delivery.post_json("http://x/ev", {"n": 1})
        self.clock.advance(0)
        replay = delivery.replay_dead_letters(10)
        for _ in range(20):
            self.clock.advance(1)
        self.assertEqual(self.successResultOf(replay), 1)
        self.assertEqual(len(http.calls), 2)
        self.assertEqual(len(self.broker.queue_messages(DEAD_QUEUE)), 1)

    async def test_breaker_skips_a_dead_url(self) -> None:
        """After repeated failures new posts to the URL are queued, not tried."""
        delivery, http = await self.make(DOWN, breaker_threshold=2, breaker_cooldown=30)
        await delivery.post_json("http://dead/mo", 1)
        await delivery.post_json("http://dead/mo", 2)
        before = len(http.calls)
        result = await delivery.post_json("http://dead/mo", 3)
        self.assertEqual(len(http.calls), before)
        self.assertEqual(result.error, "breaker open, queued")
        other = ScriptedHttp(OK)
        delivery.http = other  # type: ignore[assignment]
        await delivery.post_json("http://alive/mo", 4)
        self.assertEqual(len(other.calls), 1)


class BoundedPosterTests(TestCase):
    async def test_bounded_retries_stop_at_their_own_age(self) -> None:
        """A bounded poster (MO: inbound TTL) gives up sooner than the default."""
        clock = Clock()
        clock.advance(1_000_000)
        broker = MemoryBroker(clock)
        self.addCleanup(broker.close)
        http = ScriptedHttp(DOWN)
        delivery = HttpDelivery(clock, http, broker, max_age=86400)  # type: ignore[arg-type]
        await delivery.start()
        self.addCleanup(delivery.stop)
        poster = delivery.bounded(60)
        self.assertEqual(poster.max_age, 60)
        await poster.post_json("http://x/mo", {"a": 1})
        for _ in range(200):
            clock.advance(1)
            clock.advance(0)
        self.assertEqual(len(broker.queue_messages(DEAD_QUEUE)), 1)
        self.assertEqual(delivery.bounded(10**9).max_age, 86400)


class TemplatedUrlTests(DeliveryTestCase):
    async def test_filled_templates_share_the_template_breaker(self) -> None:
        """Each filled URL differs; their failures trip the template's breaker."""
        template = "http://dead/mo?id=%I"
        delivery, http = await self.make(DOWN, breaker_threshold=2, breaker_cooldown=30)
        await delivery.post_json("http://dead/mo?id=1", 1, breaker_key=template)
        await delivery.post_json("http://dead/mo?id=2", 2, breaker_key=template)
        before = len(http.calls)
        result = await delivery.post_json(
            "http://dead/mo?id=3", 3, breaker_key=template
        )
        self.assertEqual(len(http.calls), before)
        self.assertEqual(result.error, "breaker open, queued")
        self.assertEqual(list(delivery._urls), [template])

    async def test_retries_repost_the_filled_url(self) -> None:
        """A retried job posts the URL filled before the first attempt."""
        delivery, http = await self.make(DOWN, OK)
        await delivery.post_json(
            "http://x/mo?id=abc", {"a": 1}, breaker_key="http://x/mo?id=%I"
        )
        self.run_for(60)
        self.assertEqual(
            [url for url, _body, _token in http.calls],
            ["http://x/mo?id=abc", "http://x/mo?id=abc"],
        )
        self.assertEqual(delivery._urls, {})
