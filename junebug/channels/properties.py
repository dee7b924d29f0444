"""A channel's properties: what ``POST /channels/`` accepted, as stored.

They stay the JSON object the API was given (a ``TypedDict`` is a plain dict
at run time): a key the schema does not list survives, and what the API
answers is what it stored.  This module says what the keys mean to a running
channel: whether it forwards MO messages, and which keys need its parts
restarted when they change.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final, TypedDict, cast

__all__ = [
    "CALLBACK_URL_KEYS",
    "RUNTIME_KEYS",
    "ChannelProperties",
    "as_channel_properties",
    "has_destination",
    "needs_restart",
]


class ChannelProperties(TypedDict, total=False):
    """The keys of ``CHANNEL_CREATE`` (:mod:`junebug.api.schemas`); only
    ``type`` and ``config`` are required by the API.  An update may set the
    URL and queue keys to ``None`` (removed)."""

    type: str
    label: str
    config: dict[str, Any]
    metadata: dict[str, Any]
    status_url: str | None
    mo_url: str | None
    mo_url_auth_token: str | None
    mo_format: str
    amqp_queue: str | None
    rate_limit_count: int
    rate_limit_window: int
    character_limit: int
    public_http: dict[str, Any]


def as_channel_properties(value: dict[str, Any]) -> ChannelProperties:
    """The same JSON object, as the properties it holds: one the API's schema
    (or the config) accepted, so nothing is checked again here."""
    return cast("ChannelProperties", value)


#: Property keys that hold callback URLs (http(s) only).
CALLBACK_URL_KEYS: Final = ("mo_url", "status_url")
#: Property keys whose change needs the channel's parts restarted.
RUNTIME_KEYS: Final = frozenset(
    {
        "type",
        "config",
        "mo_url",
        "mo_url_auth_token",
        "mo_format",
        "amqp_queue",
        "status_url",
    }
)


def has_destination(properties: Mapping[str, Any]) -> bool:
    """A channel forwards MO only if it has ``mo_url`` or ``amqp_queue`` set."""
    return bool(properties.get("mo_url") or properties.get("amqp_queue"))


def needs_restart(changed_keys: Iterable[str]) -> bool:
    """Whether changing these keys needs the channel's parts restarted."""
    return not RUNTIME_KEYS.isdisjoint(changed_keys)
