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


def channel_traffic(channel_id: str) -> str:
    """Whether a channel is paused and what of its queued MT is cancelled."""
    return f"{channel_id}:traffic"


def owner_logs(owner_id: str) -> str:
    """The newest log entries of a channel, router or destination (a list)."""
    return f"{owner_id}:logs"


def message_logs(owner_id: str, message_id: str) -> str:
    """The log entries and protocol exchanges about one message (a list)."""
    return f"{owner_id}:message_logs:{message_id}"


def rate_bucket(owner_id: str, label: str, bucket: int) -> str:
    return f"{owner_id}:{label}:{bucket}"


def send_budget(channel_id: str) -> str:
    """A channel's rate-limit budget (a sorted set, and ``<key>:spent``)."""
    return f"{channel_id}:rate_limit"


def router(router_id: str) -> str:
    return f"routers:{router_id}"


def router_destinations(router_id: str) -> str:
    return f"routers:{router_id}:destinations"


def router_destination(router_id: str, destination_id: str) -> str:
    return f"routers:{router_id}:destinations:{destination_id}"


# -- the cluster (junebug/cluster) -------------------------------------------

#: The set of process ids that have announced themselves.
CLUSTER_PROCESSES = "cluster:processes"


def cluster_process(process_id: str) -> str:
    """A process's heartbeat (JSON), expiring unless renewed."""
    return f"cluster:process:{process_id}"


def cluster_owner(channel_id: str) -> str:
    """The lease on a channel's transport: ``<process id>:<fencing token>``."""
    return f"cluster:owner:{channel_id}"


def cluster_fence(channel_id: str) -> str:
    """The counter a channel's fencing tokens are taken from."""
    return f"cluster:fence:{channel_id}"


def cluster_revision(channel_id: str) -> str:
    """Counts the changes (and restarts) of a channel, so every process
    notices one it was not told about."""
    return f"cluster:revision:{channel_id}"


def cluster_deleted(channel_id: str) -> str:
    """Marks a channel deleted through the API (for an hour), so the other
    processes delete its queues too; a channel whose properties vanish
    without it (Redis emptied) keeps its queues."""
    return f"cluster:deleted:{channel_id}"


def cluster_router_revision(router_id: str) -> str:
    """Counts the changes of a router and its destinations (as
    :func:`cluster_revision` does for a channel)."""
    return f"cluster:router_revision:{router_id}"


# -- transports' own keys (each prefixed as the original's transports did) ---


def dmark_session(channel_id: str, transaction_id: str) -> str:
    """A Dmark USSD session (vumi's name for it)."""
    return f"vumi.transports.dmark_ussd:{channel_id}:session:{transaction_id}"


def http_provider_message(channel_id: str, provider_id: str) -> str:
    """Maps an HTTP aggregator's message id to ours."""
    return f"{channel_id}:http:provider_message_id:{provider_id}"


def smpp_remote_message(bind_prefix: str, smsc_id: str) -> str:
    """Maps a (normalised) SMSC message id to ours."""
    return f"smpp:{bind_prefix}:remote_message:{smsc_id}"


def smpp_multipart(
    bind_prefix: str, sender: str, recipient: str, ref: int, total: int
) -> str:
    """The MO parts, received so far, of one multipart message."""
    return f"smpp:{bind_prefix}:multipart:{sender}:{recipient}:{ref}:{total}"
