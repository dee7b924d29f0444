"""Routing-key and queue names, exactly as the original Junebug used them."""

from __future__ import annotations


def inbound(name: str) -> str:
    """MO messages of a channel, destination or ``amqp_queue``."""
    return f"{name}.inbound"


def outbound(name: str) -> str:
    """MT messages for a channel, destination or ``amqp_queue``."""
    return f"{name}.outbound"


def event(name: str) -> str:
    """Events (ack, nack, delivery_report)."""
    return f"{name}.event"


def status(name: str) -> str:
    """Status events of a channel's transport."""
    return f"{name}.status.status"


def failed(queue: str) -> str:
    """Where a message goes whose handler failed twice."""
    return f"{queue}.failed"
