"""Deleting the queues of a deleted channel or router destination.

A deleted owner's queues would otherwise stay in RabbitMQ for ever, durable,
with whatever MO and events were waiting in them.  Deletion is best effort: if
the broker is unreachable the owner is still deleted (its store records are
gone already), the failure is logged, and the queues are left behind.
"""

from __future__ import annotations

from twisted.logger import Logger

from junebug.amqp import topology
from junebug.amqp.broker import Broker


async def delete_owned_queues(
    broker: Broker, name: str, *, with_status: bool, log: Logger
) -> None:
    """Delete the queues :func:`~junebug.amqp.topology.owned_queues` names."""
    for queue in topology.owned_queues(name, with_status=with_status):
        try:
            await broker.delete_queue(queue)
        except Exception:
            log.failure("Could not delete queue {queue}", queue=queue)
            return
