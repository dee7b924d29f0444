"""A channel's health: status events in, the API's status object out."""

from __future__ import annotations

from typing import Any

import attrs
from twisted.logger import Logger

from junebug.channels.forwarding import JsonPoster
from junebug.http.client import redact_url, short_reason
from junebug.messages import Message, api_status_view
from junebug.stores.rates import RateStore
from junebug.stores.status import StatusStore

LEVELS = ("down", "degraded", "ok")

RATE_FIELDS = (
    ("inbound_message_rate", "inbound"),
    ("outbound_message_rate", "outbound"),
    ("submitted_event_rate", "submitted"),
    ("rejected_event_rate", "rejected"),
    ("delivery_succeeded_rate", "delivery_succeeded"),
    ("delivery_failed_rate", "delivery_failed"),
    ("delivery_pending_rate", "delivery_pending"),
)


def worst_level(levels: list[str]) -> str | None:
    """The worst of the given levels (down < degraded < ok); None if none."""
    known = [level for level in levels if level in LEVELS]
    if not known:
        return None
    return min(known, key=LEVELS.index)


@attrs.define
class StatusReceiver:
    """Stores each status event of a channel and POSTs it to ``status_url``."""

    channel_id: str
    statuses: StatusStore
    http: JsonPoster
    log: Logger
    status_url: str | None = None

    async def handle_status(self, status: Message) -> None:
        await self.statuses.save(self.channel_id, status)
        if not self.status_url:
            return
        view = api_status_view(status, self.channel_id)
        result = await self.http.post_json(self.status_url, view)
        if not result.ok:
            self.log.error(
                "Error sending status event to {url}: {reason}",
                url=redact_url(self.status_url),
                reason=short_reason(result),
                channel_id=self.channel_id,
            )


async def status_object(
    channel_id: str,
    statuses: StatusStore,
    rates: RateStore,
    extra_components: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The ``status`` object of a channel as the API shows it."""
    stored = await statuses.load(channel_id)
    components = {
        name: api_status_view(status, channel_id) for name, status in stored.items()
    }
    components.update(extra_components or {})
    result: dict[str, Any] = {
        "status": worst_level([c["status"] for c in components.values()]),
        "components": components,
    }
    for field, label in RATE_FIELDS:
        result[field] = await rates.rate(channel_id, label)
    return result
