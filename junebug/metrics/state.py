"""Gauges read at scrape time from state Junebug already keeps.

Nothing is counted on the hot path for these: a scrape asks the broker how
many messages wait in each running channel's outbound queue
(:meth:`StateCollector.refresh`, awaited by the ``/metrics`` route), then
:meth:`StateCollector.collect` reports them with the SMPP windows and binds and
the Redis and RabbitMQ connection states.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from twisted.logger import Logger

from junebug.amqp import topology
from junebug.channels.registry import ChannelRegistry

log = Logger()


class StateCollector(Collector):
    """Queue depths, SMPP windows and binds, connection states."""

    def __init__(self, channels: ChannelRegistry) -> None:
        self._channels = channels
        #: (channel id, queue) -> messages waiting, one per priority queue.
        self._depths: dict[tuple[str, str], int] = {}

    async def refresh(self) -> None:
        """Ask the broker for the depth of every running channel's queue."""
        broker = self._channels.deps.broker
        queues = {
            topology.outbound_at(cid, priority): cid
            for cid in self._channels.running_ids()
            for priority in topology.PRIORITIES
        }
        self._depths = {}
        if not queues or not broker.is_connected():
            return
        try:
            depths = await broker.queue_depths(list(queues))
        except Exception as exc:
            log.warn("Could not count queued messages: {error}", error=exc)
            return
        self._depths = {
            (queues[queue], queue): depth for queue, depth in depths.items()
        }

    def describe(self) -> Iterable[Metric]:
        return []  # the families are known only when collected

    def collect(self) -> Iterable[Metric]:
        depth = GaugeMetricFamily(
            "junebug_queue_messages",
            "MT messages waiting in a channel's outbound queue (one per priority).",
            labels=["channel_id", "queue"],
        )
        for (cid, queue), count in sorted(self._depths.items()):
            depth.add_metric([cid, queue], count)
        window = GaugeMetricFamily(
            "junebug_smpp_window_in_use",
            "submit_sm sent and not yet answered (or about to be sent).",
            labels=["channel_id"],
        )
        window_size = GaugeMetricFamily(
            "junebug_smpp_window_size",
            "The channel's window_size: submit_sm allowed in flight.",
            labels=["channel_id"],
        )
        bound = GaugeMetricFamily(
            "junebug_smpp_bound",
            "1 while the SMPP channel is bound to its SMSC, else 0.",
            labels=["channel_id"],
        )
        for cid in self._channels.running_ids():
            channel = self._channels.running(cid)
            transport: Any = channel.transport if channel is not None else None
            in_use = getattr(transport, "window_in_use", None)
            if not isinstance(in_use, int):
                continue
            window.add_metric([cid], in_use)
            window_size.add_metric([cid], transport.window_size)
            bound.add_metric([cid], 1 if transport.is_bound else 0)
        deps = self._channels.deps
        redis = GaugeMetricFamily(
            "junebug_redis_connected", "1 while connected to Redis, else 0."
        )
        is_connected = getattr(deps.backend, "is_connected", None)
        redis.add_metric([], 1 if is_connected is None or is_connected() else 0)
        rabbit = GaugeMetricFamily(
            "junebug_rabbitmq_connected", "1 while connected to RabbitMQ, else 0."
        )
        rabbit.add_metric([], 1 if deps.broker.is_connected() else 0)
        return [depth, window, window_size, bound, redis, rabbit]
