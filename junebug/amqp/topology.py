"""Routing-key and queue names, exactly as the original Junebug used them."""

from __future__ import annotations


def inbound(name: str) -> str:
    """MO messages of a channel, destination or ``amqp_queue``."""
    return f"{name}.inbound"


def outbound(name: str) -> str:
    """MT messages for a channel, destination or ``amqp_queue``."""
    return f"{name}.outbound"


#: MT priorities, lowest first: 1 is bulk (the default), 5 real-time.
PRIORITIES = (1, 2, 3, 4, 5)


def outbound_at(name: str, priority: int) -> str:
    """MT of one priority: ``<name>.outbound`` is priority 1 (what vumi
    applications publish to), ``<name>.outbound.p<N>`` the higher ones."""
    if priority == 1:
        return outbound(name)
    return f"{outbound(name)}.p{priority}"


def event(name: str) -> str:
    """Events (ack, nack, delivery_report)."""
    return f"{name}.event"


def status(name: str) -> str:
    """Status events of a channel's transport."""
    return f"{name}.status.status"


def failed(queue: str) -> str:
    """Where a message goes whose handler failed twice."""
    return f"{queue}.failed"


def owned_queues(name: str, *, with_status: bool) -> list[str]:
    """The queues Junebug declares for a channel (``with_status``) or a router
    destination, with their failed queues: deleted along with their owner."""
    queues = [inbound(name), event(name), outbound(name)]
    if with_status:
        queues.extend(outbound_at(name, p) for p in PRIORITIES[1:])
        queues.append(status(name))
    return [*queues, *(failed(queue) for queue in queues)]


#: RabbitMQ's longest queue name, in UTF-8 bytes (an AMQP short string).
MAX_QUEUE_NAME_BYTES = 255
#: The longest suffix Junebug puts after an ``amqp_queue`` name.
_LONGEST_SUFFIX = len(failed(outbound("")))
#: The longest ``amqp_queue`` whose every queue RabbitMQ accepts.
MAX_AMQP_QUEUE_BYTES = MAX_QUEUE_NAME_BYTES - _LONGEST_SUFFIX


def amqp_queue_problem(name: str) -> str | None:
    """Why RabbitMQ would refuse the queues of ``amqp_queue`` ``name``, or None.

    The queues are ``<name>.inbound``, ``.event``, ``.outbound`` and
    ``.outbound.failed``: each must be UTF-8 of at most 255 bytes, and names
    starting with ``amq.`` are reserved for the broker.
    """
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:
        return "must be valid Unicode text (no lone surrogates)"
    if size > MAX_AMQP_QUEUE_BYTES:
        return f"must be at most {MAX_AMQP_QUEUE_BYTES} bytes of UTF-8, not {size}"
    if name.startswith("amq."):
        return 'must not start with "amq." (reserved by RabbitMQ)'
    return None
