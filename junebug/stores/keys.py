"""Every Redis key Junebug uses, in one place, named as the original named them."""

from __future__ import annotations

CHANNELS = "channels"
ROUTERS = "routers"


def channel_properties(channel_id: str) -> str:
    return f"{channel_id}:properties"


def channel_status(channel_id: str) -> str:
    return f"{channel_id}:status"


def inbound_message(owner_id: str, message_id: str) -> str:
    return f"{owner_id}:inbound_messages:{message_id}"


def outbound_message(owner_id: str, message_id: str) -> str:
    return f"{owner_id}:outbound_messages:{message_id}"


def rate_bucket(owner_id: str, label: str, bucket: int) -> str:
    return f"{owner_id}:{label}:{bucket}"


def router(router_id: str) -> str:
    return f"routers:{router_id}"


def router_destinations(router_id: str) -> str:
    return f"routers:{router_id}:destinations"


def router_destination(router_id: str, destination_id: str) -> str:
    return f"routers:{router_id}:destinations:{destination_id}"
