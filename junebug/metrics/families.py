"""The metric families of one Junebug, in its own :class:`CollectorRegistry`.

Every part that counts gets the :class:`JunebugMetrics` (or the per-channel
:class:`ChannelMetrics`) through its dependency object.  The label children a
message touches are looked up once per channel and kept, so counting a message
is an attribute read and an ``inc()``.  Tests start many Junebugs in one
process; each has its own registry, never the global default one.
"""

from __future__ import annotations

from contextlib import suppress

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.metrics import MetricWrapperBase

from junebug import __version__

#: SMPP round trips: milliseconds to a few seconds.
RESPONSE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: Delivery receipts: a second to a day.
RECEIPT_BUCKETS = (1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 14400.0, 86400.0)
#: Time held back by a rate limit: none to a minute.
RATE_LIMIT_BUCKETS = (0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
#: API requests.
REQUEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)

#: The events that say a message was sent or failed.
SENT_EVENT = "ack"
FAILED_EVENT = "nack"


class JunebugMetrics:
    """The counters and histograms of one Junebug (one process)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        reg = self.registry
        #: The event types each channel has counted (to forget them).
        self.event_types: dict[str, set[str]] = {}
        ProcessCollector(registry=reg)
        PlatformCollector(registry=reg)
        Gauge(
            "junebug_build_info",
            "Always 1; the running version.",
            ["version"],
            registry=reg,
        ).labels(__version__).set(1)
        channel = ["channel_id", "channel_type"]
        self.received = Counter(
            "junebug_messages_received",
            "MO messages a channel's transport received.",
            channel,
            registry=reg,
        )
        self.sent = Counter(
            "junebug_messages_sent",
            "MT messages the provider accepted (an ack event).",
            channel,
            registry=reg,
        )
        self.failed = Counter(
            "junebug_messages_failed",
            "MT messages the transport or provider refused (a nack event).",
            channel,
            registry=reg,
        )
        self.events = Counter(
            "junebug_events",
            "Events a channel's transport published, by event type.",
            ["channel_id", "event_type"],
            registry=reg,
        )
        self.submit_response = Histogram(
            "junebug_smpp_submit_response_seconds",
            "Time from sending a submit_sm to its submit_sm_resp.",
            ["channel_id"],
            buckets=RESPONSE_BUCKETS,
            registry=reg,
        )
        self.submit_receipt = Histogram(
            "junebug_smpp_submit_receipt_seconds",
            "Time from a submit_sm_resp to the message's delivery receipt.",
            ["channel_id"],
            buckets=RECEIPT_BUCKETS,
            registry=reg,
        )
        self.rate_limit_wait = Histogram(
            "junebug_rate_limit_wait_seconds",
            "Time an MT send (an SMPP submit_sm) waited for its channel's rate"
            " limit (0 when it did not have to).",
            ["channel_id"],
            buckets=RATE_LIMIT_BUCKETS,
            registry=reg,
        )
        self.callback_attempts = Counter(
            "junebug_http_callback_attempts",
            "HTTP callback POSTs made (first attempts and retries).",
            registry=reg,
        )
        self.callback_failures = Counter(
            "junebug_http_callback_failures",
            "HTTP callback POSTs that failed (network error, timeout or non-2xx).",
            registry=reg,
        )
        self.callback_retries = Counter(
            "junebug_http_callback_retries",
            "HTTP callbacks scheduled for a later retry.",
            registry=reg,
        )
        self.callback_dead_letters = Counter(
            "junebug_http_callback_dead_letters",
            "HTTP callbacks given up on and moved to the dead-letter queue.",
            registry=reg,
        )
        self.stored_log_entries_dropped = Counter(
            "junebug_stored_log_entries_dropped",
            "Channel log entries not written to the store (it was away).",
            registry=reg,
        )
        self.handoffs = Counter(
            "junebug_handoffs",
            "Events and MO of the channels this process runs, handed straight"
            " to the channel's forwarder (way=forwarder) or left to RabbitMQ"
            " (way=queue), by kind (event, mo).",
            ["kind", "way"],
            registry=reg,
        )
        self.api_requests = Histogram(
            "junebug_api_request_duration_seconds",
            "Time to answer an API request, by route and method.",
            ["route", "method"],
            buckets=REQUEST_BUCKETS,
            registry=reg,
        )

    def identify(self, process_id: str, host: str, pid: int, worker: str) -> None:
        """Say which process these series come from
        (``junebug_process_info``): the cluster's process id, host, pid and
        ``jb --workers`` index (empty without a supervisor).  Scrapes of
        several workers are told apart by it, whatever port they came in on."""
        Gauge(
            "junebug_process_info",
            "Always 1; which jb process (and worker of jb --workers) this is.",
            ["process_id", "host", "pid", "worker"],
            registry=self.registry,
        ).labels(process_id, host, str(pid), worker).set(1)

    def channel(self, channel_id: str, channel_type: str) -> ChannelMetrics:
        """The children one channel counts with (made once per channel)."""
        return ChannelMetrics(self, channel_id, channel_type)

    def forget_channel(self, channel_id: str, channel_type: str) -> None:
        """Drop a deleted channel's series."""
        for counter in (self.received, self.sent, self.failed):
            _remove(counter, channel_id, channel_type)
        for histogram in (
            self.submit_response,
            self.submit_receipt,
            self.rate_limit_wait,
        ):
            _remove(histogram, channel_id)
        for event_type in self.event_types.pop(channel_id, ()):
            _remove(self.events, channel_id, event_type)


def _remove(family: MetricWrapperBase, *labels: str) -> None:
    with suppress(KeyError):
        family.remove(*labels)


class ChannelMetrics:
    """One channel's label children, looked up once."""

    def __init__(
        self, metrics: JunebugMetrics, channel_id: str, channel_type: str
    ) -> None:
        self._metrics = metrics
        self.channel_id = channel_id
        self.received = metrics.received.labels(channel_id, channel_type)
        self.sent = metrics.sent.labels(channel_id, channel_type)
        self.failed = metrics.failed.labels(channel_id, channel_type)
        self.submit_response = metrics.submit_response.labels(channel_id)
        self.submit_receipt = metrics.submit_receipt.labels(channel_id)
        self.rate_limit_wait = metrics.rate_limit_wait.labels(channel_id)
        self._events: dict[str, Counter] = {}

    def event(self, event_type: str) -> None:
        """Count one event (and the sent or failed message it reports)."""
        child = self._events.get(event_type)
        if child is None:
            child = self._events[event_type] = self._metrics.events.labels(
                self.channel_id, event_type
            )
            self._metrics.event_types.setdefault(self.channel_id, set()).add(event_type)
        child.inc()
        if event_type == SENT_EVENT:
            self.sent.inc()
        elif event_type == FAILED_EVENT:
            self.failed.inc()


def unregistered_channel(
    channel_id: str = "", channel_type: str = ""
) -> ChannelMetrics:
    """Children in a registry nobody scrapes (a transport built without one)."""
    return JunebugMetrics().channel(channel_id, channel_type)
