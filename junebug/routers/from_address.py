"""The built-in ``from_address`` router: split one channel by address regexes.

Router config: ``channel`` (required): the id (a UUID) of a channel that has no
``mo_url`` and no ``amqp_queue`` of its own and that no other router routes.

Destination config: ``regular_expression`` (required unless ``default`` is
true) and ``default`` (boolean, false by default; at most one per router).

Matching rule -- despite the type's name, and as in the original Junebug:
an MO message's **``to_addr``** (the address the user wrote to: a short or long
code, a USSD string, the telnet server address) is ``re.search``-ed with every
destination's regular expression.  That is the address that tells the
applications sharing a channel apart (the use cases are "several SMS lines on
one bind" and "USSD sub-codes to different applications"); the sender's
address identifies a user, not an application.  Keeping the original's rule
also keeps existing router configurations working.

- Every matching destination receives the message (fan-out).
- The ``default`` destination receives only what matches no destination (also
  messages without a ``to_addr``).  Without one, unmatched messages are logged
  and dropped.

Events are routed to the destination the message was sent through: sends via a
destination (HTTP endpoint or its ``amqp_queue``) record it in the channel's
outbound record.  Records without it (e.g. written by the original Junebug)
fall back to the original rule: the record's ``from`` matched against the
regular expressions (then the default destination).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from typing import Any

from junebug.channels.properties import has_destination
from junebug.errors import InvalidRouterConfig, InvalidRouterDestinationConfig
from junebug.messages import Message
from junebug.routers.interface import DESTINATION_KEY, Router, RouterDependencies


def channel_uuid(value: Any) -> str | None:
    """The canonical form of a channel UUID, or None if it is not one."""
    if not isinstance(value, str):
        return None
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None


def _is_default(destination: dict[str, Any]) -> bool:
    return (destination.get("config") or {}).get("default") is True


class FromAddressRouter(Router):
    """Routes a channel's MO to destinations by regexes on ``to_addr``."""

    @classmethod
    async def validate_router_config(
        cls, deps: RouterDependencies, config: dict[str, Any], router_id: str | None
    ) -> None:
        if config.get("channel") is None:
            raise InvalidRouterConfig("Missing required config field 'channel'")
        channel_id = channel_uuid(config["channel"])
        if channel_id is None:
            raise InvalidRouterConfig("Field 'channel' is not a valid UUID")
        properties = await deps.channels.store.load(channel_id)
        if properties is None:
            raise InvalidRouterConfig(f"Channel {channel_id} does not exist")
        if has_destination(properties):
            raise InvalidRouterConfig(
                f"Channel {channel_id} already has a destination specified"
            )
        for other_id in await deps.store.list_ids():
            if other_id == router_id:
                continue
            other = await deps.store.load(other_id)
            other_channel = channel_uuid(
                ((other or {}).get("config") or {}).get("channel")
            )
            if other_channel == channel_id:
                raise InvalidRouterConfig(
                    f"Router {other_id} is already routing channel {channel_id}"
                )

    @classmethod
    async def validate_destination_config(
        cls,
        deps: RouterDependencies,
        config: dict[str, Any],
        *,
        router_id: str,
        others: Sequence[dict[str, Any]],
    ) -> None:
        default = config.get("default", False)
        if not isinstance(default, bool):
            raise InvalidRouterDestinationConfig("Field 'default' is not a boolean")
        pattern = config.get("regular_expression")
        if pattern is None:
            if not default:
                raise InvalidRouterDestinationConfig(
                    "Missing required config field 'regular_expression'"
                )
        else:
            if not isinstance(pattern, str):
                raise InvalidRouterDestinationConfig(
                    "Field 'regular_expression' is not a valid regular expression: "
                    "it is not a string"
                )
            try:
                re.compile(pattern)
            except re.error as exc:
                raise InvalidRouterDestinationConfig(
                    "Field 'regular_expression' is not a valid regular expression: "
                    f"{exc}"
                ) from None
        if default:
            for other in others:
                if _is_default(other):
                    raise InvalidRouterDestinationConfig(
                        f"Destination {other['id']} is already the default "
                        f"destination of router {router_id}; only one destination "
                        "may be the default"
                    )

    def __init__(
        self,
        router: dict[str, Any],
        destinations: Sequence[dict[str, Any]],
        deps: RouterDependencies,
    ) -> None:
        super().__init__(router, destinations, deps)
        self.channel_id = channel_uuid(self.config.get("channel")) or str(
            self.config.get("channel")
        )
        self._patterns: list[tuple[str, re.Pattern[str]]] = []
        self.default_destination: str | None = None
        for destination_id, destination in self.destinations.items():
            config = destination.get("config") or {}
            pattern = config.get("regular_expression")
            if isinstance(pattern, str):
                try:
                    self._patterns.append((destination_id, re.compile(pattern)))
                except re.error as exc:
                    # Validated when saved; only data written by something
                    # else (e.g. the original under Python 2) can get here.
                    self.log.error(
                        "Destination {destination_id} has an invalid regular "
                        "expression and matches nothing: {error}",
                        destination_id=destination_id,
                        error=str(exc),
                    )
            if _is_default(destination) and self.default_destination is None:
                self.default_destination = destination_id

    async def setup(self) -> None:
        await self.consume_channel(
            self.channel_id, self.handle_inbound, self.handle_event
        )

    def get_destination_channel(self, destination_id: str, body: Any) -> str:
        return self.channel_id

    def match(self, address: Any) -> list[str]:
        """Destinations for an address: every match, else the default."""
        matched = []
        if isinstance(address, str):
            matched = [did for did, regex in self._patterns if regex.search(address)]
        if not matched and self.default_destination is not None:
            matched = [self.default_destination]
        return matched

    async def handle_inbound(self, message: Message) -> None:
        to_addr = message.get("to_addr")
        targets = self.match(to_addr)
        if not targets:
            if to_addr is None:
                self.log.error(
                    "Message has no to address, cannot route message {message_id}",
                    message_id=message.get("message_id"),
                )
            else:
                self.log.info(
                    "No destination matches to address {to_addr}; "
                    "dropping message {message_id}",
                    to_addr=to_addr,
                    message_id=message.get("message_id"),
                )
            return
        for destination_id in targets:
            await self.send_inbound_to_destination(destination_id, message)

    async def handle_event(self, event: Message) -> None:
        message_id = event.get("user_message_id")
        if not message_id:
            self.log.error(
                "Event {event_id} has no user_message_id, cannot route event",
                event_id=event.get("event_id"),
            )
            return
        record = await self.deps.messages.load_outbound(self.channel_id, message_id)
        if record is None:
            self.log.error(
                "Cannot find message {message_id} for event {event_id}, "
                "not routing event",
                message_id=message_id,
                event_id=event.get("event_id"),
            )
            return
        sent_through = record.get(DESTINATION_KEY)
        if sent_through is not None:
            if sent_through not in self.destinations:
                self.log.warn(
                    "Destination {destination_id} of message {message_id} no "
                    "longer exists, not routing event {event_id}",
                    destination_id=sent_through,
                    message_id=message_id,
                    event_id=event.get("event_id"),
                )
                return
            targets = [sent_through]
        else:
            from_addr = record.get("from")
            targets = self.match(from_addr)
            if not targets:
                self.log.error(
                    "Message {message_id} has no from address matching a "
                    "destination, cannot route event {event_id}",
                    message_id=message_id,
                    event_id=event.get("event_id"),
                )
                return
        for destination_id in targets:
            await self.send_event_to_destination(destination_id, event)
