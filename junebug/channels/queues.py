"""A channel's queues: how long its MT queues are, and deleting them.

:func:`queue_length` is the ``status.queue`` of ``GET /channels/<id>``: one
:meth:`~junebug.amqp.broker.Broker.queue_depths` call for the five priority
queues, and the time each priority needs to drain at the channel's current
send rate (MT handed to the transport per second, over the last complete
``metric_window``), counting the higher priorities that go first.  Messages
prefetched by the transport's process are not counted as waiting.

A deleted owner's queues would otherwise stay in RabbitMQ for ever, durable,
with whatever MO and events were waiting in them.  Deletion is best effort: if
the broker is unreachable the owner is still deleted (its store records are
gone already), the failure is logged, and the queues are left behind.
"""

from __future__ import annotations

from typing import Any

from twisted.logger import Logger

from junebug.amqp import topology
from junebug.amqp.broker import Broker
from junebug.stores.rates import RateStore
from junebug.stores.traffic import TrafficStore

#: The rate label of MT handed to a transport (counted by the channel).
SENT_RATE = "sent"


async def queue_length(
    broker: Broker, rates: RateStore, traffic: TrafficStore, channel_id: str
) -> dict[str, Any]:
    """Messages waiting per priority and the estimated seconds to send them
    (``None``: never at the current rate, or paused)."""
    state = await traffic.load(channel_id)
    rate = await rates.rate(channel_id, SENT_RATE)
    queues = {p: topology.outbound_at(channel_id, p) for p in topology.PRIORITIES}
    depths = await broker.queue_depths(list(queues.values()))
    priorities: dict[str, dict[str, Any]] = {}
    ahead = 0
    for priority in reversed(topology.PRIORITIES):
        waiting = depths.get(queues[priority], 0)
        ahead += waiting
        drain: float | None
        if ahead == 0:
            drain = 0
        elif state.paused or not rate:
            drain = None
        else:
            drain = round(ahead / rate, 3)
        priorities[str(priority)] = {"waiting": waiting, "drain_seconds": drain}
    return {
        "paused": state.paused,
        "waiting": ahead,
        "send_rate": rate,
        "priorities": priorities,
    }


async def delete_owned_queues(
    broker: Broker, name: str, *, with_status: bool, log: Logger
) -> None:
    """Delete the queues :func:`~junebug.amqp.topology.owned_queues` names."""
    try:
        await broker.delete_queues(topology.owned_queues(name, with_status=with_status))
    except Exception:
        log.failure("Could not delete the queues of {name}", name=name)
