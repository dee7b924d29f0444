"""HTTP deliveries (MO, events, statuses) that are retried, never dropped.

The first attempt is made at once.  If it fails (a network error, a timeout, a
5xx, 408, 425 or 429) the delivery is published to RabbitMQ with a delay and
retried by whichever Junebug consumes ``junebug.http.retry``: exponential
backoff with jitter (rounded up to the broker's delay tiers), until it succeeds
or ``max_age`` seconds have passed since the first attempt.  Then, or at once
for a 4xx the receiver will never accept, it goes to ``junebug.http.dead``,
where an operator can look at it and replay it (``/dead-letters/http``).

Nothing waits in process memory, so a restart loses nothing.  A URL that keeps
failing trips a per-URL breaker: for ``breaker_cooldown`` seconds new
deliveries to it skip the first attempt and go straight to the retry queue, so
a dead or slow URL cannot hold up the messages behind it.  Deliveries to a
filled URL template (:mod:`junebug.http.url_templates`) share the template's
breaker (``breaker_key``): each of their URLs is different.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from typing import Any, Final, NotRequired, TypedDict, TypeVar, cast

import attrs
from twisted.internet.defer import Deferred, DeferredLock
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from junebug.amqp.broker import Broker, Consumer
from junebug.http import plain
from junebug.http.client import HttpClient, HttpResult, redact_url, short_reason
from junebug.http.plain import PlainRequest
from junebug.messages import Message
from junebug.metrics.families import JunebugMetrics

T = TypeVar("T")

#: The ``message_type`` of a delivery job on the retry and dead queues.
JOB_TYPE: Final = "junebug_http_delivery"
RETRY_QUEUE = "junebug.http.retry"
DEAD_QUEUE = "junebug.http.dead"
#: ``last_error`` as versions before #12.9 wrote it: the code, then the body.
_OLD_HTTP_ERROR = re.compile(r"HTTP (\d{3}): ")
#: HTTP codes worth trying again; other 4xx will not change by waiting.
RETRYABLE_CODES = frozenset({408, 425, 429})


def retryable(result: HttpResult) -> bool:
    """Whether a failed result may succeed later (a refused one never will)."""
    if result.refused:
        return False
    return result.code is None or result.code >= 500 or result.code in RETRYABLE_CODES


class DeliveryJob(TypedDict):
    """One delivery on ``junebug.http.retry`` or ``junebug.http.dead``, as
    JSON: what to POST, and how far its retries have got.

    A job read back from a queue is not checked (one another Junebug version
    wrote may lack a field): what is not ``url`` is read with a default."""

    #: Seconds after ``first_attempt`` during which it is retried.
    max_age: float
    message_type: str
    url: str
    #: The JSON body to POST.
    body: object
    token: str | None
    timeout: float
    #: Retries made so far (0: only the first attempt).
    attempt: int
    #: When the first attempt was made (reactor seconds).
    first_attempt: float
    #: Why the last attempt failed.
    last_error: NotRequired[str]
    #: The breaker it counts against, if not its ``url``'s own (the URL
    #: template it was filled from).
    breaker_key: NotRequired[str]
    #: For a dialect's callback (:class:`~junebug.http.plain.PlainRequest`),
    #: its method, body and expected answer; a JSON POST has none of them.
    method: NotRequired[str]
    content_type: NotRequired[str | None]
    data: NotRequired[str | None]
    headers: NotRequired[list[list[str]]]
    expect: NotRequired[str | None]
    #: Log fields naming what the delivery is about (``channel_id``,
    #: ``message_id``): its retries and dead letter show in that channel's
    #: and that message's logs.
    about: NotRequired[dict[str, str]]


def _job(message: Message) -> DeliveryJob:
    """A message from the retry or dead queue, as the job it was published as."""
    return cast("DeliveryJob", message)


@attrs.define
class _UrlHealth:
    failures: int = 0
    opened_at: float | None = None


class HttpDelivery:
    """Posts JSON with durable retries; drop-in for ``HttpClient.post_json``."""

    log = Logger()

    def __init__(
        self,
        reactor: IReactorTime,
        http: HttpClient,
        broker: Broker,
        *,
        max_age: float = 86400.0,
        base_delay: float = 1.0,
        max_delay: float = 3600.0,
        breaker_threshold: int = 3,
        breaker_cooldown: float = 30.0,
        prefetch: int = 20,
        metrics: JunebugMetrics | None = None,
    ) -> None:
        self.reactor = reactor
        counted = metrics if metrics is not None else JunebugMetrics()
        self._attempts = counted.callback_attempts
        self._failures = counted.callback_failures
        self._retries = counted.callback_retries
        self._dead_letters = counted.callback_dead_letters
        self.http = http
        self.broker = broker
        self.max_age = max_age
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.breaker_threshold = breaker_threshold
        self.breaker_cooldown = breaker_cooldown
        self.prefetch = prefetch
        self._urls: dict[str, _UrlHealth] = {}
        self._consumer: Consumer | None = None
        #: One listing or replay at a time, so none sees another's work.
        self._operators = DeferredLock()

    def _now(self) -> float:
        now: float = self.reactor.seconds()
        return now

    async def start(self) -> None:
        """Declare the dead-letter queue and start retrying."""
        await self.broker.declare_queue(DEAD_QUEUE)
        self._consumer = await self.broker.consume(
            RETRY_QUEUE, self._retry, prefetch=self.prefetch
        )

    async def stop(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await consumer.stop()

    # -- the poster interface --------------------------------------------------

    def bounded(self, max_age: float) -> BoundedPoster:
        """A poster whose retries stop after ``max_age`` seconds (at most
        :attr:`max_age`): MO messages use the inbound TTL, events the outbound
        TTL, so nothing is delivered after it could still be acted on."""
        return BoundedPoster(self, min(max_age, self.max_age))

    async def post_json(
        self,
        url: str,
        body: Any,
        *,
        token: str | None = None,
        timeout: float = 10.0,
        max_age: float | None = None,
        breaker_key: str | None = None,
        about: Mapping[str, str] | None = None,
    ) -> HttpResult:
        """POST now; if that fails, schedule durable retries and say so.

        ``breaker_key`` names the breaker (``url`` if None); ``about`` is
        added to the log events of the retries (see :class:`DeliveryJob`).
        """
        key = breaker_key or url
        job: DeliveryJob = {
            "max_age": max_age or self.max_age,
            "message_type": JOB_TYPE,
            "url": url,
            "body": body,
            "token": token,
            "timeout": timeout,
            "attempt": 0,
            "first_attempt": self._now(),
        }
        if about:
            job["about"] = dict(about)
        if breaker_key is not None:
            job["breaker_key"] = breaker_key
        return await self._first_attempt(job, key)

    async def send_request(
        self,
        url: str,
        request: PlainRequest,
        *,
        timeout: float = 10.0,
        max_age: float | None = None,
        breaker_key: str | None = None,
    ) -> HttpResult:
        """Make a dialect's callback request now; retried as :meth:`post_json`."""
        key = breaker_key or url
        job: DeliveryJob = {
            "max_age": max_age or self.max_age,
            "message_type": JOB_TYPE,
            "url": url,
            "body": None,
            "token": None,
            "timeout": timeout,
            "attempt": 0,
            "first_attempt": self._now(),
        }
        job.update(request.as_job())  # type: ignore[typeddict-item]
        if breaker_key is not None:
            job["breaker_key"] = breaker_key
        return await self._first_attempt(job, key)

    async def _first_attempt(self, job: DeliveryJob, key: str) -> HttpResult:
        if self._breaker_open(key):
            result = HttpResult(ok=False, code=None, error="breaker open, queued")
            await self._schedule(job, result)
            return result
        result = await self._attempt(job)
        self._record(key, result)
        if not result.ok:
            await self._after_failure(job, result)
        return result

    async def _attempt(self, job: DeliveryJob) -> HttpResult:
        """One try of a job: its JSON POST, or its dialect request."""
        timeout = job.get("timeout", 10.0)
        request = plain.from_job(job)
        if request is not None:
            return await self.http.send_request(job["url"], request, timeout=timeout)
        return await self.http.post_json(
            job["url"], job.get("body"), token=job.get("token"), timeout=timeout
        )

    # -- retries ---------------------------------------------------------------

    async def _retry(self, message: Message) -> None:
        job = _job(message)
        url = job["url"]
        key = job.get("breaker_key") or url
        job["attempt"] = int(job.get("attempt", 0)) + 1
        if self._breaker_open(key) and not self._breaker_probe_due(key):
            await self._schedule(
                job, HttpResult(ok=False, code=None, error="breaker open")
            )
            return
        result = await self._attempt(job)
        self._record(key, result)
        if result.ok:
            self.log.info(
                "Delivered to {url} on attempt {attempt}",
                url=redact_url(url),
                attempt=job["attempt"],
                **_about(job),
            )
            return
        await self._after_failure(job, result)

    async def _after_failure(self, job: DeliveryJob, result: HttpResult) -> None:
        if not retryable(result):
            await self._dead(job, result)
            return
        await self._schedule(job, result)

    def _delay(self, attempt: int) -> float:
        raw = min(self.max_delay, self.base_delay * (2**attempt))
        return float(raw * random.uniform(0.5, 1.5))

    async def _schedule(self, job: DeliveryJob, result: HttpResult) -> None:
        delay = self._delay(int(job.get("attempt", 0)))
        age = self._now() - float(job.get("first_attempt", self._now()))
        if age + delay > float(job.get("max_age") or self.max_age):
            await self._dead(job, result)
            return
        job["last_error"] = short_reason(result)
        await self.broker.publish_later(RETRY_QUEUE, job, delay)
        self._retries.inc()
        about = _about(job)
        if about:
            self.log.info(
                "Delivery to {url} failed ({error}): retry in {delay:.1f}s",
                url=redact_url(job["url"]),
                error=job["last_error"],
                delay=delay,
                **about,
            )

    async def _dead(self, job: DeliveryJob, result: HttpResult) -> None:
        job["last_error"] = short_reason(result)
        self.log.error(
            "Giving up on delivery to {url} after {attempt} retries: {error}",
            url=redact_url(job["url"]),
            attempt=job.get("attempt", 0),
            error=job["last_error"],
            **_about(job),
        )
        await self.broker.publish(DEAD_QUEUE, job)
        self._dead_letters.inc()

    # -- the breaker -------------------------------------------------------------

    def _record(self, url: str, result: HttpResult) -> None:
        """Count a POST made and feed the URL's breaker."""
        self._attempts.inc()
        if not result.ok:
            self._failures.inc()
        health = self._urls.setdefault(url, _UrlHealth())
        if result.ok:
            self._urls.pop(url, None)
            return
        if not retryable(result):
            return
        health.failures += 1
        if health.failures >= self.breaker_threshold:
            health.opened_at = self._now()

    def _breaker_open(self, url: str) -> bool:
        health = self._urls.get(url)
        if health is None or health.opened_at is None:
            return False
        return self._now() - health.opened_at < self.breaker_cooldown

    def _breaker_probe_due(self, url: str) -> bool:
        """Retries may probe an open breaker once in a while."""
        return random.random() < 0.1

    # -- operators -----------------------------------------------------------------

    async def dead_letters(self, limit: int) -> list[dict[str, Any]]:
        """Look at up to ``limit`` dead letters, oldest first.

        They are only looked at (:meth:`Broker.peek`): each is listed once,
        however large ``limit`` is, and nothing is republished, so an
        abandoned listing leaves the queue as it was.
        """
        async with self._operators:
            seen = [_job(m) for m in await self.broker.peek(DEAD_QUEUE, limit)]
        return [_public(job) for job in seen]

    def replay_dead_letters(self, limit: int) -> Deferred[int]:
        """Retry up to ``limit`` dead letters now, with a fresh retry budget.

        A replay runs to its end even if its caller is cancelled (a client
        hanging up): stopping between republishing a letter and acknowledging
        it would leave it both dead and retried.
        """

        async def replay(message: Message) -> None:
            job = _job(message)
            job["attempt"] = 0
            job["first_attempt"] = self._now()
            await self.broker.publish(RETRY_QUEUE, job)

        async def run() -> int:
            async with self._operators:
                # Only the letters dead when the replay starts: one refused
                # again meanwhile (the retry consumer runs beside the drain)
                # is back in the queue and must not be replayed again by it.
                depths = await self.broker.queue_depths([DEAD_QUEUE])
                waiting = min(limit, depths.get(DEAD_QUEUE, 0))
                if waiting == 0:
                    return 0
                return await self.broker.drain(DEAD_QUEUE, replay, waiting)

        return _uncancellable(Deferred.fromCoroutine(run()), self.log)


@attrs.frozen
class BoundedPoster:
    """``post_json`` through an :class:`HttpDelivery` with its own retry age."""

    delivery: HttpDelivery
    max_age: float

    async def post_json(
        self,
        url: str,
        body: Any,
        *,
        token: str | None = None,
        timeout: float = 10.0,
        breaker_key: str | None = None,
        about: Mapping[str, str] | None = None,
    ) -> HttpResult:
        return await self.delivery.post_json(
            url,
            body,
            token=token,
            timeout=timeout,
            max_age=self.max_age,
            breaker_key=breaker_key,
            about=about,
        )

    async def send_request(
        self,
        url: str,
        request: PlainRequest,
        *,
        timeout: float = 10.0,
        breaker_key: str | None = None,
    ) -> HttpResult:
        return await self.delivery.send_request(
            url,
            request,
            timeout=timeout,
            max_age=self.max_age,
            breaker_key=breaker_key,
        )


def _about(job: DeliveryJob) -> dict[str, str]:
    """The job's ``about`` log fields (only text: it came back from a queue)."""
    about = job.get("about")
    if not isinstance(about, dict):
        return {}
    return {
        k: v
        for k, v in about.items()
        if k in ("channel_id", "message_id") and isinstance(v, str)
    }


def _uncancellable(work: Deferred[T], log: Logger) -> Deferred[T]:
    """Fires like ``work``; cancelling it leaves ``work`` running to its end
    (a failure nobody waits for any more is logged)."""
    result: Deferred[T] = Deferred(lambda _: None)

    def settle(outcome: T | Failure) -> None:
        if isinstance(outcome, Failure):
            if result.called:
                log.failure("Dead-letter replay failed after its caller left", outcome)
            else:
                result.errback(outcome)
        elif not result.called:
            result.callback(outcome)

    work.addBoth(settle)
    return result


def _public(job: DeliveryJob) -> dict[str, Any]:
    """A dead letter as the API shows it: no token, no URL password, and no
    answer body even in letters written by older versions."""
    last_error = job.get("last_error")
    if isinstance(last_error, str):
        old = _OLD_HTTP_ERROR.match(last_error)
        if old is not None:
            code = int(old.group(1))
            last_error = short_reason(HttpResult(ok=False, code=code))
    return {
        "url": redact_url(job.get("url", "")),
        "body": job.get("body") if "method" not in job else job.get("data"),
        "attempts": job.get("attempt", 0),
        "first_attempt": job.get("first_attempt"),
        "last_error": last_error,
    }
